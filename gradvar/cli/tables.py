"""Plain-text tables for stdout, made from result tables (no numerics beyond formatting)."""

import math

from gradvar import io

SIGNIFICANT_BIAS_Z = 5.0  # flag a bias beyond this many standard errors in sweep tables
MANY_COORDS = 12  # more gradient coordinates than this: the console shows their aggregate


def render(headers, rows, right=()):
    """Align ``rows`` (lists of strings) under ``headers``; columns in ``right`` right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = []
    for row in [headers] + rows:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def isnan(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x, digits=4):
    """A number to ``digits`` significant digits; NaN as 'n/a'."""
    if isnan(x):
        return "n/a"
    return f"{float(x):.{digits}g}"


def rate(x):
    """Estimates per second with an SI suffix: 6.1M."""
    if isnan(x) or x <= 0:
        return "n/a"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}"


def mean_sem(mean, sem):
    """'1.992 ± 0.017': the estimate to the precision its standard error supports."""
    if isnan(mean):
        return "n/a"
    if isnan(sem) or sem <= 0 or not math.isfinite(sem):
        return f"{mean:.6g} ± {num(sem, 2)}"
    decimals = min(12, max(0, 1 - math.floor(math.log10(sem))))
    return f"{mean:.{decimals}f} ± {sem:.{decimals}f}"


def cell_description(results, skip=()):
    """'mu=1, sigma=1, k=0': each parameter column's first value (columns all NaN left out)."""
    parts = []
    for c in io.parameter_columns(results):
        values = [v for v in results[c] if not isnan(v) and v != ""]
        if c not in skip and values:
            parts.append(f"{c}={io.describe_value(values[0])}")
    return ", ".join(parts)


def heading(results, swept=()):
    """The line above a table: what was run, where, with how many estimates."""
    row = results.iloc[0]
    from gradvar.model import registry

    obj = registry.OBJECTIVES.get((row["family"], row["objective"]))
    formula = f" {obj.summary}" if obj is not None else ""
    batch = "" if "batch" in swept else f" of batch {int(row['batch'])}"
    sweep = f"; sweep over {', '.join(swept)}" if swept else ""
    return (
        f"{row['family']} / {row['objective']}{formula}; {cell_description(results, swept)}; "
        f"n = {int(row['n']):,} estimates{batch} per cell, seed {int(row['seed'])}{sweep}"
    )


def point_table(results):
    """One row per estimator and coordinate with every statistic the reader needs."""
    headers = [
        "estimator",
        "param",
        "estimate ± sem",
        "exact",
        "variance [95% CI]",
        "exact var",
        "MSE",
        "variance × f-evals",
        "estimates/s",
    ]
    rows = []
    for r in results.itertuples(index=False):
        ci = f"{num(r.grad_var)} [{num(r.var_ci_low)}, {num(r.var_ci_high)}]"
        rows.append(
            [
                io.estimator_label(r.estimator, r.baseline),
                r.param,
                mean_sem(r.grad_mean, r.grad_sem),
                num(r.exact_grad, 6),
                ci,
                num(r.exact_var),
                num(r.mse),
                num(r.var_f_evals),
                rate(r.estimates_per_s),
            ]
        )
    return render(headers, rows, right={7, 8})


def coordinate_count(results):
    return results["param"].nunique()


def aggregate(results):
    """One row per (cell, estimator, baseline) for many coordinates: grad_var, exact_var, mse
    and var_f_evals summed over the coordinates (NaN if any is NaN), the largest |bias_z|;
    ``param`` says how many coordinates were summed."""
    frame = results.assign(_cell=io.cell_index(results), _abs_z=results["bias_z"].abs())
    keys = ["_cell", "estimator", "baseline"]
    sums = {c: (c, lambda x: x.sum(skipna=False)) for c in ("grad_var", "exact_var", "mse")}
    out = frame.groupby(keys, sort=False, dropna=False).agg(
        **sums,
        var_f_evals=("var_f_evals", lambda x: x.sum(skipna=False)),
        bias_z=("_abs_z", lambda x: x.max(skipna=False)),
        estimates_per_s=("estimates_per_s", "first"),
        f_evals=("f_evals", "first"),
        coords=("param", "size"),
    )
    first = frame.groupby(keys, sort=False, dropna=False).first()
    out = first.drop(columns=list(out.columns), errors="ignore").join(out).reset_index()
    out["param"] = [f"sum of {n} coords" for n in out["coords"]]
    return out.drop(columns=["_cell", "_abs_z", "coords"], errors="ignore")


def aggregate_table(agg):
    """The point table of :func:`aggregate` rows."""
    headers = [
        "estimator",
        "coords",
        "max |bias z|",
        "total variance",
        "exact total var",
        "total MSE",
        "variance × f-evals",
        "estimates/s",
    ]
    rows = [
        [
            io.estimator_label(r.estimator, r.baseline),
            r.param.removeprefix("sum of ").removesuffix(" coords"),
            num(r.bias_z, 3),
            num(r.grad_var),
            num(r.exact_var),
            num(r.mse),
            num(r.var_f_evals),
            rate(r.estimates_per_s),
        ]
        for r in agg.itertuples(index=False)
    ]
    return render(headers, rows, right=set(range(1, 8)))


def sweep_tables(results, swept):
    """Per coordinate, a grid: swept values down, estimators across, 'variance [exact]'.

    An estimator that ignores a swept option (its column empty) ran once: its one value
    stands in every row of that option's values."""
    frame = results.assign(
        _label=[
            io.estimator_label(e, b)
            for e, b in zip(results["estimator"], results["baseline"], strict=False)
        ],
    )
    labels = list(dict.fromkeys(frame["_label"]))
    points = io.sweep_points(frame, swept)
    blocks, flagged = [], False
    # estimators of different cost: the same grid at equal cost, variance x f-evals
    costs = [1.0] if frame["f_evals"].nunique() <= 1 else [1.0, "f_evals"]
    for cost in costs:
        for param in dict.fromkeys(frame["param"]):
            sub = frame[frame["param"] == param]
            rows = []
            for point in points:
                part = io.at_point(sub, swept, point)
                row = [f"{v:.4g}" for v in point]
                for label in labels:
                    hit = part[part["_label"] == label]
                    text, flag = _variance_entry(hit.iloc[0], cost) if len(hit) else ("", False)
                    flagged |= flag
                    row.append(text)
                rows.append(row)
            if cost == 1.0:
                title = f"Variance of one estimate of d/d{param} (exact in brackets)"
            else:
                title = f"Variance × f-evals of d/d{param}, at equal cost (exact in brackets)"
            right = set(range(len(swept) + len(labels)))
            blocks.append(title + "\n" + render(list(swept) + labels, rows, right=right))
    speed = ", ".join(
        f"{label} {rate(frame[frame['_label'] == label]['estimates_per_s'].median())}"
        for label in labels
    )
    notes = [f"estimates/s (median over cells): {speed}"]
    ignored = []
    for label in labels:
        rows = frame[frame["_label"] == label]
        free = [c for c in swept if rows[c].isna().all()]
        if free:
            ignored.append(f"{label} ({', '.join(free)})")
    if ignored:
        notes.append(
            "ignoring the swept options in brackets, these ran once per value of the others, "
            f"their value repeated down the rows: {', '.join(ignored)}"
        )
    if flagged:
        notes.append(
            f"* bias beyond {SIGNIFICANT_BIAS_Z:g} standard errors (full statistics in results.csv)"
        )
    return "\n\n".join(blocks) + "\n\n" + "\n".join(notes)


def _variance_entry(r, cost=1.0):
    """'variance [exact]' of a row, both times ``cost`` (1, or the row's ``f_evals``)."""
    scale = r[cost] if isinstance(cost, str) else cost
    flag = not isnan(r["bias_z"]) and abs(r["bias_z"]) > SIGNIFICANT_BIAS_Z
    exact = "" if isnan(r["exact_var"]) else f" [{num(r['exact_var'] * scale)}]"
    return f"{num(r['grad_var'] * scale)}{exact}{'*' if flag else ''}", flag


def results_table(results):
    """The stdout report of a compare run: heading, the point or sweep table, and a flag
    for every number that cannot be trusted (:func:`trust_flags`)."""
    swept = io.swept_columns(results)
    count = coordinate_count(results)
    if count > MANY_COORDS:
        agg = aggregate(results)
        body = sweep_tables(agg, swept) if swept else aggregate_table(agg)
        note = (
            f"\n\n{count} coordinates: the table shows their sums (variances, MSE) and the "
            "largest |bias z|; every coordinate is in results.csv"
        )
        return heading(results, swept) + "\n\n" + body + note
    body = sweep_tables(results, swept) if swept else point_table(results)
    flags = trust_flags(results)
    return heading(results, swept) + "\n\n" + body + "".join(f"\n{f}" for f in flags)


def trust_flags(results):
    """'!' lines: estimators with non-finite estimates (cells, largest count and share;
    the statistics cover the finite ones only), a variance that overflowed, and a variance
    of 0 with a mean or exact variance that says otherwise (the inputs lost precision:
    f(z) - b cancelled; a pathwise estimator's constant estimate where f jumps is a bias
    instead, which the bias column and the jump note tell)."""
    flags = []
    cell = io.cell_index(results)
    frame = results.assign(_cell=cell)
    for (est, base), rows in frame.groupby(["estimator", "baseline"], sort=False, dropna=False):
        label = io.estimator_label(est, base)
        bad = rows[rows["nonfinite"] > 0]
        if len(bad):
            worst = bad.loc[bad["nonfinite"].idxmax()]
            flags.append(
                f"! {label}: non-finite estimates in {bad['_cell'].nunique()} cell(s), up to "
                f"{int(worst['nonfinite']):,} of {int(worst['n']):,} "
                f"({worst['nonfinite'] / worst['n']:.1%}); its statistics cover the finite "
                "ones only"
            )
        finite_var = rows["grad_var"].map(lambda v: isinstance(v, float) and math.isfinite(v))
        over = rows[~finite_var & (rows["nonfinite"] == 0) & rows["grad_var"].notna()]
        if len(over):
            flags.append(
                f"! {label}: the variance overflowed (inf) in {over['_cell'].nunique()} cell(s)"
            )
        off = (rows["grad_mean"] - rows["exact_grad"]).abs() > 1e-9 * rows["exact_grad"].abs()
        # a pathwise estimator off the gradient where f jumps: a bias (the bias column, a note)
        off &= not _biased_by_a_jump(rows.iloc[0])
        lost = rows[(rows["grad_var"] == 0) & ((rows["exact_var"] > 0) | off)]
        if len(lost):
            flags.append(
                f"! {label}: every estimate equal yet not the exact gradient or variance, in "
                f"{lost['_cell'].nunique()} cell(s): the inputs lose precision (f(z) - b "
                "cancels in floating point)"
            )
    return flags


def _biased_by_a_jump(row):
    """:func:`gradvar.model.registry.biased_by_a_jump` for a row of the results table."""
    from gradvar.model import registry

    objective = registry.OBJECTIVES.get((row["family"], row["objective"]))
    estimator = registry.ESTIMATORS.get(row["estimator"])
    return (
        objective is not None
        and estimator is not None
        and registry.biased_by_a_jump(objective, estimator)
    )
