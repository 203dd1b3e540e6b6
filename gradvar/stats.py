"""Statistics of a cell's estimates (pure NumPy): docs/math.md §5.

Per coordinate: mean, unbiased variance, standard error sqrt(var / n), a 95% interval for
the variance from the fourth central moment, bias against the exact gradient, its z-score
and MSE = bias^2 + var.  Per estimator and cell: total variance (trace), squared bias norm
||mean - exact||^2 and MSE, with 95% jackknife intervals over contiguous groups of
estimates (batch means), which need no normality and no cross-moments.
"""

import math

import numpy as np
from scipy import special as _sp  # scipy.stats costs ~0.4 s of import; same values

LEVEL = 0.95
Z = float(_sp.ndtri(0.5 + LEVEL / 2))


def coordinate_stats(mom, exact_grad, exact_var):
    """Dict of per-coordinate arrays from a :class:`gradvar.engine.Moments`."""
    n = mom.n_finite
    mean = mom.moments[:, 0].copy()
    p = len(mean)
    nan = np.full(p, np.nan)
    if n < 2:
        var = sem = low = high = nan
        if n == 0:
            mean = nan
    else:
        var = mom.moments[:, 1] / (n - 1)
        sem = np.sqrt(var / n)
        m4 = mom.moments[:, 3] / n
        # Var(s^2) ~ (mu4 - sigma^4 (n - 3) / (n - 1)) / n
        se_var = np.sqrt(np.maximum(m4 - var * var * (n - 3) / (n - 1), 0.0) / n)
        low = np.maximum(var - Z * se_var, 0.0)
        high = var + Z * se_var
    exact_grad = np.asarray(exact_grad, dtype=float)
    bias = mean - exact_grad
    with np.errstate(divide="ignore", invalid="ignore"):
        bias_z = np.where(sem > 0, bias / np.where(sem > 0, sem, 1.0), np.nan)
    return dict(
        grad_mean=mean,
        grad_var=var,
        grad_sem=sem,
        var_ci_low=low,
        var_ci_high=high,
        exact_grad=exact_grad,
        exact_var=np.asarray(exact_var, dtype=float),
        bias=bias,
        bias_z=bias_z,
        mse=bias * bias + var,
    )


def _pooled(counts, means, m2s):
    """Pooled (n, mean, M2) of groups, per coordinate."""
    n = counts.sum()
    mean = (counts[:, None] * means).sum(0) / n
    m2 = (m2s + counts[:, None] * (means - mean) ** 2).sum(0)
    return n, mean, m2


def _aggregates(counts, means, m2s, exact_grad):
    n, mean, m2 = _pooled(counts, means, m2s)
    total_var = float(m2.sum() / (n - 1))
    bias_sq = float(((mean - exact_grad) ** 2).sum())
    return np.array([total_var, bias_sq, bias_sq + total_var])


def summary_stats(mom, exact_grad):
    """total_var, bias_sq_norm, mse and their jackknife 95% intervals over groups."""
    exact_grad = np.asarray(exact_grad, dtype=float)
    keep = mom.group_n > 0
    counts = mom.group_n[keep].astype(float)
    means = mom.group_moments[keep][:, :, 0]
    m2s = mom.group_moments[keep][:, :, 1]
    names = ("total_var", "bias_sq_norm", "mse")
    out = {}
    if counts.sum() < 2:
        for name in names:
            out[name] = out[name + "_ci_low"] = out[name + "_ci_high"] = math.nan
        return out
    full = _aggregates(counts, means, m2s, exact_grad)
    g = len(counts)
    if g >= 3:
        idx = np.arange(g)
        loo = np.array(
            [
                _aggregates(counts[idx != i], means[idx != i], m2s[idx != i], exact_grad)
                for i in range(g)
            ]
        )
        se = np.sqrt((g - 1) / g * ((loo - loo.mean(0)) ** 2).sum(0))
        half = float(_sp.stdtrit(g - 1, 0.5 + LEVEL / 2)) * se
    else:
        half = np.full(3, np.nan)
    for i, name in enumerate(names):
        out[name] = full[i]
        out[name + "_ci_low"] = max(full[i] - half[i], 0.0)
        out[name + "_ci_high"] = full[i] + half[i]
    return out
