"""The Gumbel distribution (docs/math.md §4), vectorised in NumPy.

Location mu, scale beta > 0, z = (x - mu) / beta:

- pdf ``(1/beta) exp(-(z + exp(-z)))``, cdf ``exp(-exp(-z))``,
- inverse cdf ``mu - beta log(-log q)``,
- mean ``mu + beta gamma`` (gamma the Euler-Mascheroni constant), variance ``pi^2 beta^2 / 6``.

Sampling is by the inverse cdf from uniforms in the *open* interval (0, 1): a uniform of
exactly 0 or 1 would give an infinite variate, and patching it with ``log(u + 1e-20)``
distorts the tail.  The kernels draw the same way from :mod:`gradvar.kernels.rng`; this module is
the readable NumPy version for the Python API, the demos and the tests, checked against
``scipy.stats.gumbel_r``.

Example
-------
>>> from gradvar import gumbel
>>> x = gumbel.sample(10_000, loc=1.0, scale=2.0, rng=0)
>>> float(gumbel.cdf(gumbel.ppf(0.3, 1.0, 2.0), 1.0, 2.0))
0.3
"""

import math

import numpy as np

EULER_GAMMA = float(np.euler_gamma)
_TWO_M52 = 2.0**-52


def _check_scale(scale):
    scale = np.asarray(scale, dtype=float)
    if np.any(~(scale > 0)) or np.any(~np.isfinite(scale)):
        raise ValueError(f"scale must be finite and > 0, got {scale}")
    return scale


def _z(x, loc, scale):
    return (np.asarray(x, dtype=float) - loc) / _check_scale(scale)


def logpdf(x, loc=0.0, scale=1.0):
    """log density ``-(z + exp(-z)) - log(beta)``."""
    z = _z(x, loc, scale)
    with np.errstate(over="ignore"):
        return -(z + np.exp(-z)) - np.log(scale)


def pdf(x, loc=0.0, scale=1.0):
    """Density ``(1/beta) exp(-(z + exp(-z)))`` (0 far in either tail, never NaN)."""
    return np.exp(logpdf(x, loc, scale))


def cdf(x, loc=0.0, scale=1.0):
    """Distribution function ``exp(-exp(-z))``."""
    z = _z(x, loc, scale)
    with np.errstate(over="ignore"):
        return np.exp(-np.exp(-z))


def ppf(q, loc=0.0, scale=1.0):
    """Inverse cdf ``mu - beta log(-log q)``: -inf at q = 0, +inf at q = 1, NaN outside [0, 1]."""
    scale = _check_scale(scale)
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = loc - scale * np.log(-np.log(q))
    return np.where((q >= 0) & (q <= 1), out, np.nan)


def mean(loc=0.0, scale=1.0):
    """``mu + beta gamma``."""
    return loc + _check_scale(scale) * EULER_GAMMA


def var(loc=0.0, scale=1.0):
    """``pi^2 beta^2 / 6`` (independent of the location)."""
    return math.pi**2 * _check_scale(scale) ** 2 / 6.0


def open_uniform(size=None, rng=None):
    """Uniforms strictly inside (0, 1): ``(m + 1/2) 2^-52`` with m uniform on 0 .. 2^52 - 1.

    The same lattice as the kernels' :func:`gradvar.kernels.rng.to_open01`: every value is an
    exact double between 2^-53 and 1 - 2^-53, so neither 0 nor 1 can occur (NumPy's
    ``Generator.random`` can return 0).
    """
    gen = np.random.default_rng(rng)
    m = gen.integers(0, 2**52, size=size, dtype=np.int64)
    return (m + 0.5) * _TWO_M52


def sample(size=None, loc=0.0, scale=1.0, rng=None):
    """Gumbel(loc, scale) variates by the inverse cdf of open-interval uniforms.

    ``rng`` is a ``numpy.random.Generator``, a seed, or None (fresh entropy).
    """
    scale = _check_scale(scale)
    return loc - scale * np.log(-np.log(open_uniform(size, rng)))
