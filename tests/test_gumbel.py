"""The Gumbel distribution against scipy.stats.gumbel_r (an independent implementation)."""

import math

import numpy as np
import pytest
from scipy import stats

from gradvar import gumbel
from gradvar.kernels import rng

ALPHA = 1e-4  # significance of the distribution tests: one false alarm in 10^4 runs
PARAMS = [(0.0, 1.0), (1.5, 0.3), (-20.0, 7.0)]


@pytest.mark.parametrize("loc,scale", PARAMS)
def test_pdf_cdf_ppf_match_scipy(loc, scale):
    ref = stats.gumbel_r(loc=loc, scale=scale)
    x = loc + scale * np.linspace(-5, 30, 301)
    np.testing.assert_allclose(gumbel.pdf(x, loc, scale), ref.pdf(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gumbel.logpdf(x, loc, scale), ref.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(gumbel.cdf(x, loc, scale), ref.cdf(x), rtol=1e-12, atol=1e-300)
    q = np.linspace(1e-9, 1 - 1e-9, 257)
    np.testing.assert_allclose(
        gumbel.ppf(q, loc, scale), ref.ppf(q), rtol=1e-10, atol=1e-12 * scale
    )
    np.testing.assert_allclose(gumbel.cdf(gumbel.ppf(q, loc, scale), loc, scale), q, rtol=1e-9)
    assert gumbel.mean(loc, scale) == pytest.approx(ref.mean(), rel=1e-12, abs=1e-12)
    assert gumbel.var(loc, scale) == pytest.approx(ref.var(), rel=1e-12)


def test_pdf_is_the_derivative_of_the_cdf():
    x, h = np.linspace(-3, 8, 50), 1e-5
    numeric = (gumbel.cdf(x + h, 0.2, 1.7) - gumbel.cdf(x - h, 0.2, 1.7)) / (2 * h)
    np.testing.assert_allclose(gumbel.pdf(x, 0.2, 1.7), numeric, rtol=1e-7)


def test_extremes_are_finite_or_exact_limits():
    with np.errstate(invalid="raise", divide="raise"):  # over/underflow to 0, 1 is exact
        assert np.all(gumbel.pdf([-1e3, 1e3]) == 0.0)
        assert list(gumbel.cdf([-1e3, 1e3])) == [0.0, 1.0]
    assert list(gumbel.ppf([0.0, 1.0])) == [-np.inf, np.inf]
    assert np.isnan(gumbel.ppf([-0.1, 1.1])).all()
    with pytest.raises(ValueError, match="scale"):
        gumbel.pdf(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="scale"):
        gumbel.sample(3, scale=-1.0)


@pytest.mark.parametrize("loc,scale", PARAMS)
def test_samples_follow_scipy_gumbel(loc, scale):
    x = gumbel.sample(20_000, loc, scale, rng=np.random.default_rng(7))
    assert stats.kstest(x, stats.gumbel_r(loc=loc, scale=scale).cdf).pvalue > ALPHA
    # and a wrong scale is rejected by the same test (the test has power)
    assert stats.kstest(x, stats.gumbel_r(loc=loc, scale=1.1 * scale).cdf).pvalue < ALPHA


def test_sampling_is_reproducible_and_strictly_inside():
    assert np.array_equal(gumbel.sample(100, rng=3), gumbel.sample(100, rng=3))
    u = gumbel.open_uniform(200_000, rng=1)
    assert u.min() > 0.0 and u.max() < 1.0
    assert np.isfinite(gumbel.sample(200_000, rng=1)).all()


def test_kernel_uniforms_never_reach_0_or_1():
    """The kernels' uniform lattice at the extreme bit patterns (all zeros, all ones)."""
    lo = rng.to_open01.py_func(np.uint64(0))
    hi = rng.to_open01.py_func(np.uint64(0xFFFFFFFFFFFFFFFF))
    assert lo == 2.0**-53 and hi == 1.0 - 2.0**-53
    assert math.isfinite(-math.log(-math.log(hi))) and math.isfinite(-math.log(-math.log(lo)))
    # symmetric about 1/2, so the logistic noise log u - log(1 - u) is exactly symmetric
    b = np.uint64(0x0123456789ABCDEF)
    assert rng.to_open01.py_func(b) + rng.to_open01.py_func(~b) == 1.0


def test_kernel_gumbel_noise_follows_scipy_gumbel():
    key = rng.stream_key(11, rng.MAIN)
    with np.errstate(over="ignore"):
        g = np.array([rng.gumbel.py_func(key, c) for c in range(20_000)])
        lg = np.array([rng.logistic.py_func(key, c) for c in range(20_000)])
    assert stats.kstest(g, stats.gumbel_r.cdf).pvalue > ALPHA
    assert stats.kstest(lg, stats.logistic.cdf).pvalue > ALPHA
