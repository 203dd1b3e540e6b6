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
"""

import math

import numpy as np
import pandas as pd

from gradvar import spec
from gradvar.model import registry
from gradvar.studies import compare as api

DEFAULT_TAU = "log:0.01:10:16"
DEFAULT_ESTIMATORS = "gumbel-softmax,st-gumbel"
DEFAULT_REFERENCES = "sf,sf-baseline"
DEFAULT_LOGITS = "2,0.5,0.1"
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
]


def _names(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def plans(
    family="categorical",
    objective=None,
    estimator=DEFAULT_ESTIMATORS,
    reference=DEFAULT_REFERENCES,
    tau=DEFAULT_TAU,
    samples=1_000_000,
    batch=1,
    baseline="mean",
    seed=0,
    logits=None,
    logit=None,
    sets=None,
):
    """Validate a sweep; return (plan of the tau estimators, plan of the references or None).

    Raises :class:`gradvar.spec.SpecError` for anything a user can get wrong.
    """
    fam_values = {k: v for k, v in dict(logits=logits, logit=logit).items() if v is not None}
    if family == "categorical" and "logits" not in fam_values:
        fam_values["logits"] = DEFAULT_LOGITS
    swept_names, ref_names = _names(estimator), _names(reference)
    if not swept_names:
        raise spec.SpecError("estimator: sweep-tau needs at least one estimator that uses tau")
    taus = sorted(set(spec.parse_values(tau, "tau")))
    common = dict(
        family=family,
        objective=objective,
        baseline=baseline,
        samples=samples,
        batch=batch,
        seed=seed,
        sets=sets,
        **fam_values,
    )
    fam = registry.FAMILIES.get(family)
    if fam is not None and "relax" not in fam.capabilities:  # unknown names: spec.plan says
        relaxable = [n for n, f in registry.FAMILIES.items() if "relax" in f.capabilities]
        raise spec.SpecError(
            f"sweep-tau needs a family with relaxed samples ("
            f"{', '.join(relaxable)}), got {family!r}"
        )
    swept = spec.plan(estimator=swept_names, tau=taus, **common)
    for est in swept.estimators:
        if not est.uses_tau:
            raise spec.SpecError(
                f"estimator {est.name!r} does not use tau; give it as a "
                f"tau-independent reference (--reference {est.name})"
            )
    if set(swept.swept) - {"tau"}:
        raise spec.SpecError(
            "sweep-tau sweeps tau only; give one value for "
            + ", ".join(sorted(set(swept.swept) - {"tau"}))
        )
    refs = None
    if ref_names:
        refs = spec.plan(estimator=ref_names, **common)
        for est in refs.estimators:
            if est.uses_tau:
                raise spec.SpecError(
                    f"reference {est.name!r} depends on tau; list it under --estimator"
                )
    return swept, refs


def sweep_tau(
    family="categorical",
    objective=None,
    estimator=DEFAULT_ESTIMATORS,
    reference=DEFAULT_REFERENCES,
    tau=DEFAULT_TAU,
    samples=1_000_000,
    batch=1,
    baseline="mean",
    seed=0,
    threads=None,
    progress=None,
    logits=None,
    logit=None,
    **objective_parameters,
):
    """Bias^2, variance and MSE of relaxed estimators across a temperature grid.

    Returns ``(results, summary)`` DataFrames: the ``results.csv`` and ``summary.csv``
    tables of ``gradvar sweep-tau``, one summary row per (tau, estimator) and one per
    reference estimator (``tau`` empty, ``role`` = ``reference``).  :func:`best_tau` picks
    the MSE-minimising temperature from the summary.

    Example: ``results, summary = gradvar.sweep_tau(tau="log:0.01:10:16", samples=10**5)``.
    """
    swept, refs = plans(
        family=family,
        objective=objective,
        estimator=estimator,
        reference=reference,
        tau=tau,
        samples=samples,
        batch=batch,
        baseline=baseline,
        seed=seed,
        logits=logits,
        logit=logit,
        sets=objective_parameters,
    )
    api.set_threads(threads)
    parts = [api.run_plan(swept, progress=progress)]
    if refs is not None:
        parts.append(api.run_plan(refs, progress=progress))
    results = pd.concat([p[0] for p in parts], ignore_index=True)
    summary = pd.concat([p[1] for p in parts], ignore_index=True)
    return results, add_bias_floor(summary)


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
    return out


def best_tau(summary):
    """One row per estimator: the MSE-minimising tau of the grid (references as they are).

    ``at_grid_edge`` is True when the minimum sits on the first or last grid point, so
    the true optimum may lie outside the grid.
    """
    rows = []
    for _, group in summary.groupby("estimator", sort=False):
        group = group.sort_values("tau")
        finite = group[np.isfinite(group["mse"])]
        if finite.empty:
            row = group.iloc[0].copy()
            row["at_grid_edge"] = False
        else:
            i = int(np.argmin(finite["mse"].to_numpy()))
            row = finite.iloc[i].copy()
            swept = row["role"] == "swept"
            row["at_grid_edge"] = bool(
                swept
                and len(group) > 1
                and row["tau"] in (group["tau"].iloc[0], group["tau"].iloc[-1])
            )
        rows.append(row)
    best = pd.DataFrame(rows).reset_index(drop=True)
    return best[BEST_COLUMNS]


def _fmt(x, digits=3):
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def format_best(best):
    """The best-tau table as text (what ``gradvar sweep-tau`` prints)."""
    header = ["estimator", "best tau", "bias^2", "variance", "MSE", "MSE 95% CI"]
    lines = []
    for _, r in best.iterrows():
        tau = (
            "-"
            if r["role"] == "reference"
            else _fmt(r["tau"]) + (" (grid edge)" if r["at_grid_edge"] else "")
        )
        bias = max(r["bias_sq_debiased"], 0.0) if math.isfinite(r["bias_sq_debiased"]) else math.nan
        name = r["estimator"] + (f" ({r['baseline']})" if r["baseline"] else "")
        lines.append(
            [
                name,
                tau,
                _fmt(bias),
                _fmt(r["total_var"]),
                _fmt(r["mse"]),
                f"[{_fmt(r['mse_ci_low'])}, {_fmt(r['mse_ci_high'])}]",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    text = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    return "\n".join(text) + "\n(bias^2 debiased: ||mean - exact||^2 - total_var / n, floored at 0)"
