"""``gradvar list``: families, objectives and estimators, read from the registries."""

import click

from gradvar.model import registry


@click.command("list")
def list_command():
    """List families, objectives (with parameters) and estimators.

    \b
    Example:
      gradvar list
    """
    click.echo("Families:")
    for fam in registry.FAMILIES.values():
        params = ", ".join(f"{p.name}={_fmt(p.default)}" for p in fam.params)
        click.echo(f"  {fam.name:<12} {fam.summary}")
        click.echo(f"  {'':<12} parameters: {params}; can: {', '.join(sorted(fam.capabilities))}")
    click.echo("\nObjectives:")
    for obj in registry.OBJECTIVES.values():
        params = ", ".join(f"{p.name}={_fmt(p.default)}" for p in obj.params) or "none"
        click.echo(f"  {obj.family + ' ' + obj.name:<22} {obj.summary}   [{params}]")
    click.echo("\nEstimators:")
    for est in registry.ESTIMATORS.values():
        fams = [f.name for f in registry.FAMILIES.values() if registry.applicable(est, f)]
        click.echo(f"  {est.name:<15} {est.summary}")
        flags = [
            registry.OPTIONS[o].flag if o in registry.OPTIONS else "--" + o for o in est.options
        ]
        extra = f"; options: {', '.join(flags)}" if flags else ""
        cost = f"; f-evals per sample: {est.f_evals}"
        train = "; train only" if est.train_only else ""
        click.echo(
            f"  {'':<15} families: {', '.join(fams)}; unbiased for: {est.unbiased_for}"
            f"{extra}{cost}{train}"
        )
    click.echo("\nBaselines (sf-baseline --baseline):")
    for base in registry.BASELINES.values():
        click.echo(f"  {base.name:<15} {base.summary}")
    click.echo("\nEstimator options (a list sweeps them):")
    for opt in registry.OPTIONS.values():
        click.echo(f"  {opt.flag:<15} {opt.help} [default: {opt.default:g}]")


def _fmt(value):
    if callable(value):  # a default of the dimension: its docstring names it, else 1..K
        return (value.__doc__ or "1..K").strip()
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}"
