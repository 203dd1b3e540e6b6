"""The temperature sweep behind ``gradvar sweep-tau``: bias^2, variance and MSE against tau.

The relaxed estimators (``gumbel-softmax``, ``st-gumbel``) run once per temperature of the
grid; the tau-independent references (``sf``, ``sf-baseline``) run once, on the same noise
(every estimator's noise is a function of the seed and the sample counter only).  Bias is
measured against the gradient of the *discrete* objective (``exact_grad``), which is what
a relaxed estimator is used to approximate.

The squared-bias estimate ``bias_sq_norm = ||mean - exact||^2`` is biased upwards: its
expectation is ``||bias||^2 + total_var / n``.  Beside it the summary carries the
noise floor ``bias_sq_noise_floor = total_var / n`` and the debiased estimate
``bias_sq_debiased = bias_sq_norm - total_var / n`` (unbiased, may be negative), with the
raw estimate's jackknife interval shifted by the floor.  The plot shows the debiased
estimate and the floor: below the floor the bias is not resolved by n samples.

The best tau of each swept estimator is the grid point of least MSE and, beside it, the
vertex of a parabola fitted to log MSE against log tau around that point, with a 95%
jackknife interval over the engine's 32 groups of estimates (:func:`fitted_best_tau`; the
replicates are ``summary.csv``'s ``mse_jackknife`` column).  The interval is for the vertex
of the parabola through the true MSE at those grid points: a finer grid brings that vertex
closer to the true minimiser.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradvar import defaults, executor, spec, stats
from gradvar.model import registry
from gradvar.studies import compare as api
from gradvar.studies.base import Study, from_keywords, set_threads

BEST_COLUMNS = [
    "estimator",
    "baseline",
    "role",
    "tau",
    "bias_sq_norm",
    "bias_sq_debiased",
    "total_var",
    "mse",
    "mse_ci_low",
    "mse_ci_high",
    "at_grid_edge",
    "best_tau",
    "best_tau_low",
    "best_tau_high",
]
FIT_POINTS = 1  # grid points each side of the grid minimum in the parabola fit (docs/math.md)


def _references(value):
    """Reference estimator names: ``none`` (or empty) for none."""
    if (isinstance(value, str) and value.strip().lower() in ("", "none")) or (
        isinstance(value, (list, tuple)) and not value
    ):
        return []
    return spec.names_of(value, "reference")


@dataclass
class SweepSpec:
    swept: spec.Plan  # the estimators that use tau, one cell per temperature
    refs: spec.Plan | None  # the tau-independent references, one cell
    no_plot: bool = False


def plans(experiment):
    """Validate a sweep; return (plan of the tau estimators, plan of the references or None).

    Raises :class:`gradvar.spec.SpecError` for anything a user can get wrong.
    """
    family = experiment.get("family", defaults.SWEEP_TAU_FAMILY)
    fam = registry.FAMILIES.get(family)
    if fam is not None and "relax" not in fam.capabilities:  # unknown names: spec.plan says
        relaxable = [n for n, f in registry.FAMILIES.items() if "relax" in f.capabilities]
        raise spec.SpecError(
            f"sweep-tau needs a family with relaxed samples ("
            f"{', '.join(relaxable)}), got {family!r}"
        )
    given = experiment.get("estimator")
    swept_names = spec.names_of(
        defaults.SWEEP_TAU_ESTIMATORS if given is None else given, "estimator"
    )
    ref_names = _references(experiment.get("reference", defaults.SWEEP_TAU_REFERENCES))
    taus = sorted(set(spec.parse_values(experiment.get("tau", defaults.SWEEP_TAU_GRID), "tau")))
    for name in swept_names:  # before the plan, whose error would not say where it belongs
        est = registry.ESTIMATORS.get(name)
        if est is not None and not est.uses_tau:
            raise spec.SpecError(
                f"estimator {est.name!r} does not use tau; give it as a "
                f"tau-independent reference (--reference {est.name})"
            )
    swept = api.plan_of(experiment, family=family, estimator=swept_names, tau=taus)
    if set(swept.swept) - {"tau"}:
        raise spec.SpecError(
            "sweep-tau sweeps tau only; give one value for "
            + ", ".join(sorted(set(swept.swept) - {"tau"}))
        )
    refs = None
    if ref_names:
        # the references get the options they read; the swept estimators' (eta, rao-samples)
        # were checked by the swept plan
        readers = [registry.ESTIMATORS.get(n) for n in ref_names]
        unread = {
            o: None
            for o in registry.OPTIONS
            if not any(e is not None and e.uses(o) for e in readers)
        }
        refs = api.plan_of(
            experiment, family=family, estimator=ref_names, **{**unread, "tau": None}
        )
        for est in refs.estimators:
            if est.uses_tau:
                raise spec.SpecError(
                    f"reference {est.name!r} depends on tau; list it under --estimator"
                )
    return swept, refs


class SweepTau(Study):
    name = "sweep-tau"
    tables = ("results", "summary", "best_tau")
    resumable = True
    uses_threads = True
    distributed = True

    def allowed_keys(self):
        return api.engine_keys() | {"reference"}

    def spec(self, experiment):
        swept, refs = plans(experiment)
        return SweepSpec(swept, refs, bool(experiment.get("no-plot")))

    def resolved(self, spec):
        swept, refs = spec.swept, spec.refs
        cells = api.resolved_cells(swept)
        cells["tau"] = [float(c.tau) for c in swept.cells]
        return {
            "command": self.name,
            **cells,
            "estimator": [e.name for e in swept.estimators],
            "reference": [e.name for e in refs.estimators] if refs else [],
            "baseline": api.one_or_list(swept.baselines),
            "samples": swept.samples,
            "seed": swept.seed,
            "no-plot": spec.no_plot,
        }

    def total(self, spec):
        return sum(api.STUDY.total(api.CompareSpec(p)) for p in (spec.swept, spec.refs) if p)

    def run(self, spec, progress=None, checkpoint=None, cluster=None):
        parts = []
        for name, plan in (("swept", spec.swept), ("references", spec.refs)):
            if plan is not None:
                folder = None if checkpoint is None else checkpoint / name
                parts.append(api.run_plan(plan, progress, folder, cluster))
        results = pd.concat([p[0] for p in parts], ignore_index=True)
        summary = add_bias_floor(pd.concat([p[1] for p in parts], ignore_index=True))
        return {"results": results, "summary": summary, "best_tau": best_tau(summary)}

    def meta(self, spec, tables):
        return {
            "common_random_numbers": True,
            "bias_sq_note": "bias_sq_norm = ||mean - exact_grad||^2 has expectation "
            "||bias||^2 + total_var / n; bias_sq_debiased subtracts "
            "bias_sq_noise_floor = total_var / n (the plot shows it)",
        }


STUDY = SweepTau()


def sweep_tau(
    family=defaults.SWEEP_TAU_FAMILY,
    objective=None,
    estimator=defaults.SWEEP_TAU_ESTIMATORS,
    reference=defaults.SWEEP_TAU_REFERENCES,
    tau=defaults.SWEEP_TAU_GRID,
    samples=defaults.SAMPLES,
    batch=defaults.BATCH,
    baseline=defaults.BASELINE,
    seed=defaults.SEED,
    threads=None,
    progress=None,
    scheduler=None,
    set=None,  # noqa: A002 (the experiment key, as in TOML and on the command line)
    param=None,
    **values,
):
    """Bias^2, variance and MSE of relaxed estimators across a temperature grid.

    Returns ``(results, summary)`` DataFrames: the ``results.csv`` and ``summary.csv``
    tables of ``gradvar sweep-tau``, one summary row per (tau, estimator) and one per
    reference estimator (``tau`` empty, ``role`` = ``reference``).  :func:`best_tau` picks
    the MSE-minimising temperature from the summary; ``scheduler`` runs the cells on a Dask
    cluster (as ``--scheduler``).  Family parameters (``logits``) are
    keywords; objective parameters go in ``set`` or are keywords too.

    Example: ``results, summary = gradvar.sweep_tau(tau="log:0.01:10:16", samples=10**5)``.
    """
    values, sets = api.split_objective_keywords(STUDY, "sweep_tau", family, objective, values, set)
    experiment = from_keywords(
        STUDY,
        dict(
            family=family,
            objective=objective,
            estimator=estimator,
            reference=reference,
            tau=tau,
            samples=samples,
            batch=batch,
            baseline=baseline,
            seed=seed,
            set=sets,
            param=param,
            **values,
        ),
    )
    set_threads(threads)
    with executor.session(scheduler, threads) as cluster:
        tables = STUDY.run(STUDY.spec(experiment), progress=progress, cluster=cluster)
    return tables["results"], tables["summary"]


def add_bias_floor(summary):
    """Add ``role``, the noise floor total_var / n and the debiased squared bias."""
    out = summary.copy()
    out.insert(
        list(out.columns).index("estimator") + 1,
        "role",
        np.where(out["tau"].notna(), "swept", "reference"),
    )
    floor = out["total_var"] / out["n"]
    out["bias_sq_noise_floor"] = floor
    out["bias_sq_debiased"] = out["bias_sq_norm"] - floor
    out["bias_sq_debiased_ci_low"] = out["bias_sq_norm_ci_low"] - floor
    out["bias_sq_debiased_ci_high"] = out["bias_sq_norm_ci_high"] - floor
    out[api.JACKKNIFE] = out.pop(api.JACKKNIFE)  # stays the last column
    return out


def best_tau(summary):
    """One row per estimator: the MSE-minimising tau of the grid (references as they are),
    and the fitted best tau with its 95% interval (:func:`fitted_best_tau`) from the
    delete-one-group MSE replicates of the ``mse_jackknife`` column (NaN without it: a
    folder written before it existed).  ``at_grid_edge`` is True when the minimum sits on
    the first or last grid point with a finite MSE, so the true optimum may lie outside the
    grid (or beyond a point whose MSE is not finite).
    """
    summary = summary.assign(
        _replicates=_parse_replicates(summary.get(api.JACKKNIFE, [""] * len(summary)))
    )
    rows = []
    for _, group in summary.groupby(["estimator", "baseline"], sort=False, dropna=False):
        group = group.sort_values("tau")
        finite = group[np.isfinite(group["mse"])]
        if finite.empty:
            row = group.iloc[0].copy()
            row["at_grid_edge"] = False
        else:
            i = int(np.argmin(finite["mse"].to_numpy()))
            row = finite.iloc[i].copy()
            swept = row["role"] == "swept"
            # an edge of the grid, or of its finite part (beyond a non-finite MSE the curve
            # is unknown, so the optimum may lie there)
            row["at_grid_edge"] = bool(
                swept
                and len(group) > 1
                and row["tau"] in (finite["tau"].iloc[0], finite["tau"].iloc[-1])
            )
            if swept:
                row["best_tau"], row["best_tau_low"], row["best_tau_high"] = fitted_best_tau(
                    finite["tau"].to_numpy(dtype=float),
                    finite["mse"].to_numpy(dtype=float),
                    np.stack(list(finite["_replicates"])),
                )
        rows.append(row)
    best = pd.DataFrame(rows).reset_index(drop=True)
    for name in ("best_tau", "best_tau_low", "best_tau_high"):
        if name not in best:
            best[name] = np.nan
    return best[BEST_COLUMNS]


def _parse_replicates(replicates):
    """Per row an array of its replicates (all rows the same length G; NaN if unknown)."""
    arrays = [
        np.array([float(v) for v in text.split(",")]) if isinstance(text, str) and text else None
        for text in replicates
    ]
    g = max((len(a) for a in arrays if a is not None), default=1)
    return [a if a is not None and len(a) == g else np.full(g, np.nan) for a in arrays]


def _vertex(x, y):
    """The log tau of the minimum of the least-squares parabola y ~ a + b x + c x^2 (NaN if
    it has no minimum: c <= 0, or a curvature at the level of rounding)."""
    design = np.stack([np.ones_like(x), x, x * x], 1)
    (_, b, c), *_ = np.linalg.lstsq(design, y, rcond=None)
    rounding = 1e-12 * (np.abs(y).max() + 1.0) / np.ptp(x) ** 2
    return -b / (2 * c) if c > rounding else math.nan


def fitted_best_tau(tau, mse, replicates):
    """(tau*, low, high): the vertex of a parabola fitted to log MSE against log tau.

    ``tau`` (sorted) and ``mse`` are a swept estimator's grid, ``replicates`` (T, G) the
    MSE at each tau without group k of the engine's G groups of estimates.  The fit is
    ordinary least squares on the grid minimum and its FIT_POINTS neighbours each side (no
    data-dependent weights, so the vertex is one smooth function of those MSEs and the
    jackknife sees all of its noise).  Every cell runs on the same noise, so deleting group
    k deletes the same estimates at every tau: the fit repeated on each delete-one set gives
    G replicate vertices v_k, and the 95% interval is v ± t_{G-1} se_jack(v_k) in log tau
    (:func:`gradvar.stats.jackknife_se`), mapped back by exp.

    NaN (all three) when fewer than three points are around the minimum, or the fit has no
    minimum; the interval is NaN when the vertex falls outside the fitted points, when a
    replicate fit has no minimum, or without replicates.
    """
    nan = (np.nan, np.nan, np.nan)
    i = int(np.argmin(mse))
    lo, hi = max(0, i - FIT_POINTS), min(len(tau), i + FIT_POINTS + 1)
    x, y, reps = np.log(tau[lo:hi]), mse[lo:hi], replicates[lo:hi]
    if len(x) < 3 or not np.all(y > 0):
        return nan
    vertex = _vertex(x, np.log(y))
    if math.isnan(vertex):
        return nan
    known = reps.shape[1] >= 3 and bool(np.all(np.isfinite(reps) & (reps > 0)))
    if not known or not x[0] <= vertex <= x[-1]:
        return math.exp(vertex), np.nan, np.nan
    v = np.array([_vertex(x, np.log(row)) for row in reps.T])
    if not np.all(np.isfinite(v)):
        return math.exp(vertex), np.nan, np.nan
    half = stats.t_quantile(len(v)) * float(stats.jackknife_se(v))
    return math.exp(vertex), math.exp(vertex - half), math.exp(vertex + half)
