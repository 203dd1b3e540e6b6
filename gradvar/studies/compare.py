"""The Python API, mirroring the CLI names: ``gradvar.compare(...)`` and friends."""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradvar import engine, spec, stats, truth

# columns that depend on wall time (work_var = grad_var * seconds / n); all others are a
# deterministic function of the command and seed
TIMING_COLUMNS = ("seconds", "estimates_per_s", "work_var")
RESULT_COLUMNS = [
    "family",
    "objective",
    "estimator",
    "baseline",
    "param",
    "n",
    "batch",
    "seed",
    "grad_mean",
    "grad_var",
    "grad_sem",
    "var_ci_low",
    "var_ci_high",
    "exact_grad",
    "exact_var",
    "bias",
    "bias_z",
    "mse",
    "nonfinite",
    "work_var",
    "seconds",
    "estimates_per_s",
    "relaxed_grad",
]
SUMMARY_STATS = [
    "total_var",
    "total_var_ci_low",
    "total_var_ci_high",
    "bias_sq_norm",
    "bias_sq_norm_ci_low",
    "bias_sq_norm_ci_high",
    "mse",
    "mse_ci_low",
    "mse_ci_high",
    "exact_total_var",
    "nonfinite",
    "seconds",
    "estimates_per_s",
    "relaxed_bias_sq_norm",
]


def format_value(value):
    """A parameter as the CLI accepts it: floats round-trip, vectors as comma lists."""
    if isinstance(value, np.ndarray):
        return ",".join(repr(float(v)) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return float(value)


def set_threads(threads):
    if threads:
        import numba

        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))


def run_cell(plan, cell, progress=None, memo=None):
    """Every estimator (and baseline variant) of ``plan`` in one cell: (result rows, summary
    rows) as dict lists.

    ``memo`` (a dict shared across the cells of a run) spares re-running an estimator in
    cells that differ only in options it does not read (a tau-free estimator in a tau
    sweep): on the same noise its numbers would be identical.
    """
    from gradvar.model import OPTIONS

    rows, summary = [], []
    exact_grad = truth.exact_gradient(cell)
    # the relaxed objective's gradient (two classes, by quadrature), for tau estimators
    relaxed = truth.relaxed_gradient(cell) if any(e.uses_tau for e in plan.estimators) else None
    params = {
        **{k: format_value(v) for k, v in cell.family_values.items()},
        **{k: format_value(v) for k, v in cell.objective_values.items()},
    }
    for est in plan.estimators:
        options = {
            name: format_value(cell.options.get(name)) if est.uses(name) else math.nan
            for name in OPTIONS
        }
        for baseline in plan.variants(est):
            key = (est.name, baseline, cell.batch, tuple(params.items()), tuple(options.items()))
            if memo is not None and key in memo:
                rows += [dict(r) for r in memo[key][0]]
                summary += [dict(r) for r in memo[key][1]]
                if progress is not None:
                    progress(plan.samples)
                continue
            first_row, first_summary = len(rows), len(summary)
            mom = engine.simulate(
                cell,
                est,
                plan.samples,
                plan.seed,
                baseline=baseline,
                exact_grad=exact_grad,
                progress=progress,
            )
            _, exact_var = truth.exact_moments(cell, est, baseline)
            st = stats.coordinate_stats(mom, exact_grad, exact_var)
            rate = plan.samples / mom.seconds if mom.seconds > 0 else math.nan
            rel = relaxed if est.uses_tau else np.full(len(cell.coords), np.nan)
            common = dict(
                family=cell.family.name,
                objective=cell.objective.name,
                estimator=est.name,
                baseline=baseline,
                **params,
                **options,
                n=plan.samples,
                batch=cell.batch,
                seed=plan.seed,
            )
            for j, coord in enumerate(cell.coords):
                row = dict(
                    common,
                    param=coord,
                    **{k: float(v[j]) for k, v in st.items()},
                    nonfinite=mom.nonfinite,
                    seconds=mom.seconds,
                    estimates_per_s=rate,
                    relaxed_grad=float(rel[j]),
                )
                row["work_var"] = row["grad_var"] * mom.seconds / plan.samples
                rows.append(row)
            agg = stats.summary_stats(mom, exact_grad)
            summary.append(
                dict(
                    common,
                    **agg,
                    exact_total_var=float(np.sum(exact_var)),
                    nonfinite=mom.nonfinite,
                    seconds=mom.seconds,
                    estimates_per_s=rate,
                    relaxed_bias_sq_norm=float(np.sum((st["grad_mean"] - rel) ** 2)),
                )
            )
            if memo is not None:
                memo[key] = (rows[first_row:], summary[first_summary:])
    return rows, summary


def _tables(plan, rows, summary):
    from gradvar.model import OPTIONS

    lead = ["family", "objective", "estimator", "baseline"] + plan.param_columns
    extra = [name for name in OPTIONS if name not in lead]  # appended: scripts read by position
    results = pd.DataFrame(rows)
    results = results[lead + [c for c in RESULT_COLUMNS if c not in lead] + extra]
    summary = pd.DataFrame(summary)
    summary = summary[lead + ["n", "batch", "seed"] + SUMMARY_STATS + extra]
    return results, summary


def run_plan(plan, progress=None, checkpoint=None):
    """Run every estimator in every cell of ``plan``; return (results, summary) DataFrames.

    With ``checkpoint`` (a folder), each finished cell is saved there as two CSV files and
    cells already saved are read back instead of run again, so an interrupted sweep resumes
    where it stopped; the tables are then read from those files, so a resumed run gives the
    same bytes as an uninterrupted one.
    """
    if checkpoint is None:
        rows, summary, memo = [], [], {}
        for cell in plan.cells:
            r, s = run_cell(plan, cell, progress, memo)
            rows += r
            summary += s
        return _tables(plan, rows, summary)
    from gradvar import io

    checkpoint = Path(checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    parts, memo = [], {}
    for i, cell in enumerate(plan.cells):
        done = checkpoint / f"cell{i:05d}.summary.csv", checkpoint / f"cell{i:05d}.results.csv"
        if not all(p.exists() for p in done):
            results, summary = _tables(plan, *run_cell(plan, cell, progress, memo))
            io.replace_file(done[1], lambda tmp, table=results: io.write_csv(table, tmp))
            io.replace_file(done[0], lambda tmp, table=summary: io.write_csv(table, tmp))  # last
        elif progress is not None:
            progress(len(plan.estimators) * plan.samples)
        parts.append(done)
    summary = pd.concat([io.read_csv(s) for s, _ in parts], ignore_index=True)
    results = pd.concat([io.read_csv(r) for _, r in parts], ignore_index=True)
    return results, summary


def compare(
    estimator=None,
    objective=None,
    family="normal",
    samples=100_000,
    batch=1,
    baseline="mean",
    seed=0,
    tau=None,
    threads=None,
    summary=False,
    progress=None,
    mu=None,
    sigma=None,
    logits=None,
    logit=None,
    **objective_parameters,
):
    """Compare gradient estimators by Monte Carlo; the ``results.csv`` table as a DataFrame.

    Arguments mirror ``gradvar compare`` (REFERENCE section 6): a list (or comma text) for a
    scalar parameter sweeps it, e.g. ``compare(estimator="sf,reparam", mu="-4:4:17")``;
    objective parameters are keywords (``k=0.5``, ``w=[1, 2, 3]``).  With ``summary=True``
    returns ``(results, summary)``.
    """
    fam_values = {
        k: v
        for k, v in dict(mu=mu, sigma=sigma, logits=logits, logit=logit).items()
        if v is not None
    }
    p = spec.plan(
        family=family,
        objective=objective,
        estimator=estimator,
        baseline=baseline,
        samples=samples,
        batch=batch,
        seed=seed,
        tau=tau,
        sets=objective_parameters,
        **fam_values,
    )
    set_threads(threads)
    results, summ = run_plan(p, progress=progress)
    return (results, summ) if summary else results
