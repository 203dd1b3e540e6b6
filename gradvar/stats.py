"""Statistics of a cell's estimates (pure NumPy): docs/math.md §5.

Per coordinate: mean, unbiased variance, standard error sqrt(var / n), a 95% interval for
the variance from the fourth central moment, bias against the exact gradient, its z-score
and MSE = bias^2 + var.  Per estimator and cell: total variance (trace), squared bias norm
||mean - exact||^2 and MSE, with 95% jackknife intervals over contiguous groups of
estimates (batch means), which need no normality and no cross-moments.
"""

import math

import numpy as np

LEVEL = 0.95
# Quantiles as scipy.special gives them (tests/test_stats.py checks every digit): importing
# scipy costs ~0.15 s, a third of a small compare, and these are all the intervals need.
Z = 1.959963984540054  # ndtri(0.975), the normal quantile of LEVEL
# stdtrit(dof, 0.975), Student's t quantile, for dof = 1 .. 31: the jackknife over
# g = 2 .. 32 groups (engine.GROUPS = 32) has dof = g - 1; other dof ask scipy
T_QUANTILES = (
    (12.706204736174694, 4.302652729749462, 3.1824463052837078, 2.7764451051977934)
    + (2.5705818356363146, 2.4469118511449786, 2.364624251592784, 2.306004135204166)
    + (2.262157162798205, 2.228138851986274, 2.200985160091639, 2.1788128296672284)
    + (2.1603686564627913, 2.144786687917804, 2.131449545559776, 2.1199052992212546)
    + (2.1098155778333156, 2.1009220402410382, 2.0930240544083087, 2.085963447265864)
    + (2.0796138447276795, 2.0738730679040254, 2.0686576104190486, 2.0638985616280245)
    + (2.0595385527532972, 2.0555294386428735, 2.0518305164802846, 2.0484071417952454)
    + (2.045229642132703, 2.0422724563012378, 2.039513446396408)
)


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


def jackknife_se(replicates):
    """Jackknife standard error from delete-one replicates (axis 0): the square root of
    (g - 1) / g * sum_k (r_k - mean r)^2 over the g replicates (Efron & Stein 1981)."""
    r = np.asarray(replicates, dtype=float)
    g = len(r)
    return np.sqrt((g - 1) / g * ((r - r.mean(0)) ** 2).sum(0))


def t_quantile(groups):
    """The two-sided LEVEL quantile of Student's t with ``groups - 1`` degrees of freedom,
    which the jackknife intervals over ``groups`` groups use."""
    if 1 <= groups - 1 <= len(T_QUANTILES):
        return T_QUANTILES[groups - 2]
    from scipy.special import stdtrit

    return float(stdtrit(groups - 1, 0.5 + LEVEL / 2))


def _groups(mom):
    keep = mom.group_n > 0
    return (
        mom.group_n[keep].astype(float),
        mom.group_moments[keep][:, :, 0],
        mom.group_moments[keep][:, :, 1],
    )


def _replicates(counts, means, m2s, exact_grad):
    """(G, 3) delete-one-group aggregates (total_var, bias_sq_norm, mse)."""
    idx = np.arange(len(counts))
    return np.array(
        [
            _aggregates(counts[idx != i], means[idx != i], m2s[idx != i], exact_grad)
            for i in range(len(counts))
        ]
    )


def mse_replicates(mom, exact_grad):
    """The MSE (bias_sq_norm + total_var) of the estimates without group k, for each
    non-empty group k: the delete-one-group jackknife replicates behind ``mse_ci_low`` /
    ``mse_ci_high``, from which any smooth function of MSEs of cells run on the same noise
    (the best tau of a sweep) gets its jackknife interval.  Empty with fewer than 3 groups."""
    counts, means, m2s = _groups(mom)
    if len(counts) < 3 or counts.sum() < 2:
        return np.array([])
    return _replicates(counts, means, m2s, np.asarray(exact_grad, dtype=float))[:, 2]


def summary_stats(mom, exact_grad):
    """total_var, bias_sq_norm, mse and their jackknife 95% intervals over groups."""
    exact_grad = np.asarray(exact_grad, dtype=float)
    counts, means, m2s = _groups(mom)
    names = ("total_var", "bias_sq_norm", "mse")
    out = {}
    if counts.sum() < 2:
        for name in names:
            out[name] = out[name + "_ci_low"] = out[name + "_ci_high"] = math.nan
        return out
    full = _aggregates(counts, means, m2s, exact_grad)
    g = len(counts)
    if g >= 3:
        se = jackknife_se(_replicates(counts, means, m2s, exact_grad))
        half = t_quantile(g) * se
    else:
        half = np.full(3, np.nan)
    for i, name in enumerate(names):
        out[name] = full[i]
        out[name + "_ci_low"] = max(full[i] - half[i], 0.0)
        out[name + "_ci_high"] = full[i] + half[i]
    return out
