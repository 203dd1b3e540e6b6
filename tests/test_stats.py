"""Streaming moments and the statistics of REFERENCE section 5 (pure NumPy checks).

Coverage checks treat many independent data sets at once (one per "coordinate" or per
replicate) and assert the empirical coverage of a nominal 95% interval within Z_TOL binomial
standard errors of 0.95, with a wrong interval shown to fail the same check.
"""

import math

import numpy as np
import pytest
from helpers import Z_TOL
from scipy import stats as st

from gradvar import engine, stats
from gradvar.engine import Moments
from gradvar.kernels import moments


def central_sums(x):
    """(mean, M2, M3, M4) per row of x, by NumPy."""
    mean = x.mean(axis=-1)
    d = x - mean[..., None]
    return np.stack([mean, (d**2).sum(-1), (d**3).sum(-1), (d**4).sum(-1)], axis=-1)


def moments_of(groups):
    """A Moments record from a list of (P, m_g) arrays, one per group, the engine's way."""
    data = np.concatenate(groups, axis=1)
    return Moments(
        n_finite=data.shape[1],
        nonfinite=0,
        moments=central_sums(data),
        group_n=np.array([g.shape[1] for g in groups]),
        group_moments=np.stack([central_sums(g) for g in groups]),
        seconds=1.0,
    )


def coverage_ok(hits):
    """Empirical coverage of a nominal 95% interval within Z_TOL binomial SEs of 0.95."""
    hits = np.asarray(hits)
    return abs(hits.mean() - stats.LEVEL) < Z_TOL * math.sqrt(
        stats.LEVEL * (1 - stats.LEVEL) / hits.size
    )


# --- streaming moments ---------------------------------------------------------------------------
def test_chunk_moments_match_numpy():
    gen = np.random.default_rng(0)
    buf = np.vstack(
        [gen.normal(3.0, 2.0, 1001), gen.standard_t(3, 1001), gen.exponential(5.0, 1001)]
    )
    mom, cnt = np.empty((3, 4)), np.empty(2, dtype=np.int64)
    moments.chunk_moments(buf.copy(), mom, cnt)
    assert list(cnt) == [1001, 0]
    assert mom == pytest.approx(central_sums(buf), rel=1e-12)


def test_chunk_moments_drop_and_count_nonfinite_estimates():
    gen = np.random.default_rng(1)
    buf = gen.normal(size=(2, 500))
    buf[0, 7], buf[1, 8], buf[0, 9], buf[1, 9] = np.inf, np.nan, -np.inf, np.inf
    buf[1, 0] = np.nan  # the very first value too
    mom, cnt = np.empty((2, 4)), np.empty(2, dtype=np.int64)
    moments.chunk_moments(buf.copy(), mom, cnt)
    keep = np.all(np.isfinite(buf), axis=0)  # an estimate counts only if every coordinate is finite
    assert list(cnt) == [keep.sum(), 4]
    assert mom == pytest.approx(central_sums(buf[:, keep]), rel=1e-12)


def test_constant_column_is_exact():
    buf = np.full((2, 777), 0.1)
    buf[1] = -1.7
    mom, cnt = np.empty((2, 4)), np.empty(2, dtype=np.int64)
    moments.chunk_moments(buf, mom, cnt)
    assert np.array_equal(mom, [[0.1, 0, 0, 0], [-1.7, 0, 0, 0]])


def _in_lanes(values, r):
    """A sum in the kernel's order: value i into lane i mod r, then the lanes in order."""
    lanes = [0.0] * r
    for i, v in enumerate(values):
        lanes[i % r] += v
    total = 0.0
    for v in lanes:
        total += v
    return total


@pytest.mark.parametrize("p", [1, 2, 3, 40])  # R = 64, 32, 21 and 1 (row order) rows in lanes
@pytest.mark.parametrize("m", [1, 31, 1000])  # within one row of lanes, a partial last one
def test_chunk_moments_sum_in_lanes_of_rows_bit_for_bit(p, m):
    """Every sum of a chunk runs in the documented order (moments_rows): the kernel's bits
    are those of plain Python sums in that order; the same sums in row order (a
    deliberately wrong order) differ where there are lanes."""
    gen = np.random.default_rng(m)
    buf = gen.normal(1.0, 3.0, size=(p, m)) - 30.0 * (np.arange(p) % 2)[:, None]
    mom, cnt = np.empty((p, 4)), np.empty(2, dtype=np.int64)
    moments.chunk_moments(buf.copy(), mom, cnt)
    r = moments.lane_rows(p)
    differs = False
    for j, x in enumerate(buf):
        for lanes in (r, 1):
            mean = x[0] + _in_lanes(x - x[0], lanes) / m
            d = x - mean
            expect = [mean] + [_in_lanes(v, lanes) for v in (d * d, d * d * d, d * d * (d * d))]
            if lanes == r:
                assert [v.hex() for v in mom[j]] == [float(v).hex() for v in expect]
            else:
                differs = differs or not np.array_equal(mom[j], expect)
    assert differs or m <= r or r == 1  # r = 1: the lanes are the row order


@pytest.mark.parametrize("sizes", [(1, 1), (1, 999), (500, 500), (3, 17, 1000, 2)])
def test_merge_equals_moments_of_the_union(sizes):
    gen = np.random.default_rng(len(sizes))
    parts = [gen.standard_t(4, size=(2, m)) + 10.0 * i for i, m in enumerate(sizes)]
    total, n = np.zeros((2, 4)), 0
    for part in parts:
        n = moments.merge_into(n, total, part.shape[1], central_sums(part))
    assert n == sum(sizes)
    assert total == pytest.approx(central_sums(np.concatenate(parts, axis=1)), rel=1e-10)


# --- per-coordinate statistics --------------------------------------------------------------------
def test_coordinate_stats_formulas():
    gen = np.random.default_rng(2)
    data = gen.normal([[1.0], [-2.0]], [[0.5], [3.0]], size=(2, 1000))
    mom = moments_of([data])
    exact = np.array([1.0, -2.2])
    out = stats.coordinate_stats(mom, exact, [0.25, 9.0])
    var = data.var(axis=1, ddof=1)
    assert out["grad_mean"] == pytest.approx(data.mean(axis=1), rel=1e-12)
    assert out["grad_var"] == pytest.approx(var, rel=1e-12)
    assert out["grad_sem"] == pytest.approx(np.sqrt(var / 1000), rel=1e-12)
    bias = data.mean(axis=1) - exact
    assert out["bias"] == pytest.approx(bias, rel=1e-12)
    assert out["bias_z"] == pytest.approx(bias / np.sqrt(var / 1000), rel=1e-12)
    assert out["mse"] == pytest.approx(bias**2 + var, rel=1e-12)
    assert np.array_equal(out["exact_var"], [0.25, 9.0])
    assert np.all(out["var_ci_low"] < var) and np.all(var < out["var_ci_high"])


def test_bias_z_is_nan_for_zero_variance():
    """The exact estimator (variance 0): bias 0, bias_z NaN, never +-inf or 0/0 noise."""
    mom = moments_of([np.full((2, 100), 0.3)])
    out = stats.coordinate_stats(mom, [0.3, 0.3], [0.0, 0.0])
    assert np.all(out["grad_var"] == 0) and np.all(out["bias"] == 0)
    assert np.all(np.isnan(out["bias_z"]))
    assert np.all(out["var_ci_low"] == 0) and np.all(out["var_ci_high"] == 0)


def test_too_few_estimates_give_nan_not_numbers():
    one = Moments(1, 0, np.array([[2.0, 0, 0, 0]]), np.array([1]), np.zeros((1, 1, 4)), 0.0)
    out = stats.coordinate_stats(one, [1.0], [1.0])
    assert out["grad_mean"][0] == 2.0
    assert all(np.isnan(out[k][0]) for k in ("grad_var", "grad_sem", "var_ci_low", "bias_z", "mse"))
    none = Moments(0, 5, np.zeros((1, 4)), np.array([0]), np.zeros((1, 1, 4)), 0.0)
    out = stats.coordinate_stats(none, [1.0], [1.0])
    assert np.isnan(out["grad_mean"][0]) and np.isnan(out["bias"][0])
    assert all(np.isnan(v) for v in stats.summary_stats(none, [1.0]).values())


@pytest.mark.parametrize("law", ["normal", "exponential"])
def test_variance_interval_coverage(law):
    """The 4th-moment interval covers the true variance 95% of the time, for a light- and a
    heavy-tailed law; the normal-theory (chi-square) width fails the same check on the
    heavy-tailed one, which is why the engine uses the fourth moment."""
    gen = np.random.default_rng(3)
    reps, n = 2000, 1000
    if law == "normal":
        data, true_var, kurt = gen.normal(0.0, 2.0, (reps, n)), 4.0, 3.0
    else:
        data, true_var, kurt = gen.exponential(1.0, (reps, n)), 1.0, 9.0
    mom = Moments(n, 0, central_sums(data), np.array([n]), central_sums(data)[None], 1.0)
    out = stats.coordinate_stats(mom, np.zeros(reps), np.full(reps, true_var))
    hits = (out["var_ci_low"] <= true_var) & (true_var <= out["var_ci_high"])
    assert coverage_ok(hits)
    # the standard error itself: Var(s^2) = sigma^4 (kurtosis - (n - 3) / (n - 1)) / n
    se = (out["var_ci_high"] - out["grad_var"]) / stats.Z
    exact_se = true_var * math.sqrt((kurt - (n - 3) / (n - 1)) / n)
    assert math.sqrt(np.mean(se**2)) == pytest.approx(exact_se, rel=0.05)
    half_normal_theory = stats.Z * out["grad_var"] * math.sqrt(2 / (n - 1))
    naive = np.abs(out["grad_var"] - true_var) <= half_normal_theory
    assert coverage_ok(naive) == (law == "normal")


# --- aggregates over coordinates: jackknife over groups -----------------------------------
def _jackknife_by_hand(groups, exact):
    """total_var, bias_sq_norm, mse and jackknife half-widths from the raw data."""

    def agg(gs):
        data = np.concatenate(gs, axis=1)
        tv = data.var(axis=1, ddof=1).sum()
        b2 = ((data.mean(axis=1) - exact) ** 2).sum()
        return np.array([tv, b2, tv + b2])

    full = agg(groups)
    loo = np.array([agg(groups[:i] + groups[i + 1 :]) for i in range(len(groups))])
    g = len(groups)
    se = np.sqrt((g - 1) / g * ((loo - loo.mean(0)) ** 2).sum(0))
    return full, st.t.ppf(0.975, g - 1) * se


def test_summary_stats_known_case():
    gen = np.random.default_rng(4)
    groups = [gen.exponential([[1.0], [2.0], [0.5]], size=(3, m)) for m in gen.integers(50, 80, 32)]
    exact = np.array([1.0, 2.1, 0.5])
    out = stats.summary_stats(moments_of(groups), exact)
    full, half = _jackknife_by_hand(groups, exact)
    for i, name in enumerate(("total_var", "bias_sq_norm", "mse")):
        assert out[name] == pytest.approx(full[i], rel=1e-10)
        assert out[name + "_ci_high"] == pytest.approx(full[i] + half[i], rel=1e-9)
        assert out[name + "_ci_low"] == pytest.approx(
            max(full[i] - half[i], 0.0), rel=1e-9, abs=1e-15
        )
    # two groups: no interval (NaN), never a made-up one
    two = stats.summary_stats(moments_of(groups[:2]), exact)
    assert math.isfinite(two["total_var"])
    assert math.isnan(two["total_var_ci_low"]) and math.isnan(two["total_var_ci_high"])


def test_jackknife_total_variance_coverage():
    gen = np.random.default_rng(5)
    reps, hits = 600, []
    for _ in range(reps):
        groups = list(gen.exponential([[1.0], [3.0]], size=(32, 2, 100)))
        out = stats.summary_stats(moments_of(groups), np.array([1.0, 3.0]))
        hits.append(out["total_var_ci_low"] <= 10.0 <= out["total_var_ci_high"])  # 1 + 9
    assert coverage_ok(hits)


def test_quantiles_are_scipys_to_the_last_bit():
    """The normal and t quantiles stats keeps (to spare importing scipy) are scipy's values."""
    from scipy import special

    assert float(special.ndtri(0.5 + stats.LEVEL / 2)) == stats.Z
    for groups in range(2, len(stats.T_QUANTILES) + 4):
        exact = float(special.stdtrit(groups - 1, 0.5 + stats.LEVEL / 2))
        assert stats.t_quantile(groups) == exact, groups
    assert len(stats.T_QUANTILES) >= engine.GROUPS - 1  # every dof the jackknife meets
