"""``gradvar list``: families, objectives and estimators, read from the registries."""

import click

from gradvar.cli import common
from gradvar.model import registry

EXPRESSIONS = """
Your own objective: --objective 'EXPRESSION' in the family's sample variable ({variables})
and parameters declared with --set (scalars; a list sweeps). Allowed: numbers, + - * / **,
unary -, one comparison (worth 1 or 0), and {functions}; where(CONDITION, A, B).
Derivatives are symbolic, ground truth by quadrature or enumeration. A comparison or a
discontinuous where may jump: pathwise estimators may then be biased (kinks are fine).
  gradvar compare --objective 'exp(-k*z**2)' --set k=1 --mu 0.5
  gradvar compare --objective 'abs(z - 1)' --mu 0.5
  gradvar compare --family bernoulli --objective '(b - 0.45)**2'
  gradvar compare --family categorical --objective '(y[0] - 2*y[2])**2'
Anything an expression cannot say: a plugin, --plugin FILE.py (examples/exponential.py)."""


@click.command("list")
@common.plugin_option
def list_command(plugin):
    """List families, objectives (with parameters), estimators, and how to write an
    expression objective.

    \b
    Examples:
      gradvar list
      gradvar list --plugin examples/exponential.py
    """
    from gradvar.model import expressions

    click.echo("Families:")
    wide = _width(registry.FAMILIES, 12)  # a plugin's long name too
    for fam in registry.FAMILIES.values():
        params = ", ".join(f"{p.name}={_fmt(p.default)}" for p in fam.params)
        click.echo(f"  {fam.name:<{wide}} {fam.summary}")
        click.echo(
            f"  {'':<{wide}} parameters: {params}; can: {', '.join(sorted(fam.capabilities))}"
        )
    click.echo("\nObjectives:")
    objectives = [  # not those registered on the fly from an expression
        obj for obj in registry.OBJECTIVES.values() if not expressions.built(obj.family, obj.name)
    ]
    wide = _width([f"{obj.family} {obj.name}" for obj in objectives], 22)
    for obj in objectives:
        params = ", ".join(f"{p.name}={_fmt(p.default)}" for p in obj.params) or "none"
        click.echo(f"  {obj.family + ' ' + obj.name:<{wide}} {obj.summary}   [{params}]")
    click.echo("\nEstimators:")
    wide = _width([*registry.ESTIMATORS, *registry.BASELINES, *registry.OPTIONS], 15)
    for est in registry.ESTIMATORS.values():
        fams = [f.name for f in registry.FAMILIES.values() if registry.applicable(est, f)]
        click.echo(f"  {est.name:<{wide}} {est.summary}")
        flags = [
            registry.OPTIONS[o].flag if o in registry.OPTIONS else "--" + o for o in est.options
        ]
        extra = f"; options: {', '.join(flags)}" if flags else ""
        cost = f"; f-evals per sample: {est.f_evals}"
        train = "; train only" if est.train_only else ""
        click.echo(
            f"  {'':<{wide}} families: {', '.join(fams)}; unbiased for: {est.unbiased_for}"
            f"{extra}{cost}{train}"
        )
    click.echo("\nBaselines (sf-baseline --baseline):")
    for base in registry.BASELINES.values():
        click.echo(f"  {base.name:<{wide}} {base.summary}")
    click.echo("\nEstimator options (a list sweeps them):")
    for opt in registry.OPTIONS.values():
        click.echo(f"  {opt.flag:<{wide}} {opt.help} [default: {opt.default:g}]")
    variables = ", ".join(
        f"{f.name} {f.variable}{'[i]' if expressions.is_vector(f) else ''}"
        for f in registry.FAMILIES.values()
    )
    functions = ", ".join(n for n in expressions.FUNCTIONS if n != "where")
    click.echo(EXPRESSIONS.format(variables=variables, functions=functions))


def _fmt(value):
    if callable(value):  # a default of the dimension: its docstring names it, else 1..K
        return (value.__doc__ or "1..K").strip()
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}"


def _width(names, least):
    """The width of a name column: ``least``, or the longest name and one space more."""
    return max(least, *(len(str(n)) + 1 for n in names)) if names else least
