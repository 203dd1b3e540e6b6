"""Counter-based random numbers evaluated inside the kernels.

Every random number is a pure function of ``(key, counter)``: the SplitMix64 output
function applied to ``key + counter * golden``.  No generator state is shared between
threads, so results do not depend on the thread count or the scheduling, and an
estimator's noise does not depend on which other estimators run beside it.

Streams: ``stream_key(seed, stream)`` gives independent keys for the main Monte Carlo
draws (``MAIN``) and the baseline pilot batch (``PILOT``); an estimator that needs noise
beyond the family's draws it from ``substream(key, stream_id(name))`` at counters
c W + j for estimate c.  Normal variates use a
256-layer ziggurat (Marsaglia & Tsang's constants, Doornik's ZIGNOR layout), whose rare
retries draw from derived keys.
"""

import math

import numpy as np

from gradvar.kernels import fastmath
from gradvar.kernels.jit import kernel

MAIN = 1
PILOT = 2
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S12 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(12)
_LOW8 = np.uint64(255)
_RETRY = np.uint64(0xD1B54A32D192ED03)
_SUBSTREAM = np.uint64(0x8CB92BA72F3D8DD7)
_TWO_M52 = 2.0**-52
_TWO_M51 = 2.0**-51
_SYM = 2.0**-52 - 1.0  # exact: 2 u - 1 = floor(b / 2^12) 2^-51 + (2^-52 - 1)


def stream_id(name):
    """The 64-bit id of a named noise stream (an estimator's own, docs/math.md §6b): a hash of
    the name, so adding an estimator never moves another's noise."""
    import hashlib

    return np.uint64(
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    )


def _mix_py(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def stream_key(seed, stream):
    """The 64-bit key of random stream ``stream`` for a user seed (pure Python)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return np.uint64(
        _mix_py(_mix_py(int(seed) & 0xFFFFFFFFFFFFFFFF) ^ (stream * 0x632BE59BD9B4E019))
    )


@kernel
def bits(key, counter):
    """SplitMix64 output for ``key + counter * golden`` (64 random bits)."""
    z = key + np.uint64(counter) * GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel
def substream(key, stream):
    """The key of noise stream ``stream`` (a :func:`stream_id`) under a cell's main key:
    a pure function of (seed, stream), independent of every other stream's draws."""
    return bits(key ^ _SUBSTREAM, stream)


@kernel
def to_open01(b):
    """Map 64 random bits to a double strictly inside (0, 1): (floor(b / 2^12) + 1/2) 2^-52.

    52 bits, not 53: every (i + 1/2) 2^-52 is a double, from 2^-53 to 1 - 2^-53, symmetric
    about 1/2.  With 53 bits (i + 1/2) 2^-53 is not representable above 1/2 and the top value
    rounded to exactly 1.0 (an infinite Gumbel).
    """
    return (float(b >> _S12) + 0.5) * _TWO_M52


@kernel
def to_sym(b):
    """2 to_open01(b) - 1, a uniform in (-1, 1), bit for bit, in one product and one sum:
    both round the same exact value floor(b / 2^12) 2^-51 - 1 + 2^-52 once."""
    return float(b >> _S12) * _TWO_M51 + _SYM


@kernel
def uniform(key, counter):
    """U(0, 1) from the open interval: never 0, never 1."""
    return to_open01(bits(key, counter))


@kernel
def gumbel(key, counter):
    """Standard Gumbel G = -log(-log U), U in the open interval (0, 1) (inline log:
    :mod:`gradvar.kernels.fastmath`; U >= 2^-53 and -log U >= 2^-53 are normal numbers)."""
    return -fastmath.log_normal(-fastmath.log_normal(uniform(key, counter)))


@kernel
def logistic(key, counter):
    """Standard logistic L = log U - log(1 - U) (difference of two Gumbels in law; inline
    log: :mod:`gradvar.kernels.fastmath`).  1 - U is exact: U = (i + 1/2) 2^-52."""
    u = uniform(key, counter)
    return fastmath.log_normal(u) - fastmath.log_normal(1.0 - u)


def _ziggurat_tables(layers=256, r=3.6541528853610088, v=0.00492867323399):
    """Ziggurat tables in Doornik's (2005) ZIGNOR layout, for ``layers`` layers of area v
    (256 layers: Marsaglia & Tsang 2000): layer abscissae x_0..x_layers (x_0 = v / f(r) the
    base layer's pseudo-width, x_1 = r, x_layers = 0), acceptance ratios x_{i+1} / x_i and
    the density f(x_i) = exp(-x_i^2 / 2) at every abscissa (for the wedge test)."""
    x = np.zeros(layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    dens = np.array([math.exp(-0.5 * xi * xi) for xi in x])
    return x, x[1:] / x[:-1], dens


ZIG_LAYERS = 256
ZIG_R = 3.6541528853610088
# The tables travel as kernel arguments: a global array inside a parallel kernel becomes a
# "dynamic global" that blocks Numba's on-disk cache.
# ZIGGURAT = [x_0..x_256, ratio_0..ratio_255, f(x_0)..f(x_256)].
ZIGGURAT = np.concatenate(_ziggurat_tables())
_ZR = 257  # offset of the ratios in ZIGGURAT
_ZF = 513  # offset of the densities f(x_i)


@kernel
def normal(key, counter, zig, at=0):
    """Standard normal by the ziggurat (``zig[at:]`` = ZIGGURAT, ``at`` saving a kernel the
    slice): one 64-bit draw in 98.5% of cases.

    Bits 0-7 pick the layer, bits 12-63 the uniform u in (-1, 1); accept u x_i when
    |u| < x_{i+1} / x_i.  The rare rest is in :func:`_normal_retry`, kept out of line so that
    this fast path inlines into the estimator loops.
    """
    b = bits(key, counter)
    u = to_sym(b)
    i = int(b & _LOW8)
    if abs(u) < zig[at + _ZR + i]:
        return u * zig[at + i]
    return _normal_retry(key, counter, zig[at:], u, i)


@kernel(inline="never")  # rare: keep it out of the hot loop
def _normal_retry(key, counter, zig, u, i):
    """Wedge and tail of the ziggurat (Marsaglia & Tsang 2000), then fresh attempts.

    Attempt r draws from the derived keys key + r R, so the variate stays a pure function of
    (key, counter) and never reuses another draw's bits.
    """
    k = key
    while True:
        k = k + _RETRY
        if i == 0:  # the tail beyond R, by Marsaglia's method
            while True:
                xt = math.log(uniform(k, counter)) / ZIG_R
                k = k + _RETRY
                y = math.log(uniform(k, counter))
                if -2.0 * y >= xt * xt:
                    return xt - ZIG_R if u < 0.0 else ZIG_R - xt
                k = k + _RETRY
        x = u * zig[i]
        # the wedge: a uniform height between f(x_i) and f(x_{i+1}) below the density at x
        f0 = zig[_ZF + i]
        f1 = zig[_ZF + i + 1]
        if f1 + uniform(k, counter) * (f0 - f1) < math.exp(-0.5 * x * x):
            return x
        k = k + _RETRY  # a fresh attempt, on bits no earlier step used
        b = bits(k, counter)
        u = to_sym(b)
        i = int(b & _LOW8)
        if abs(u) < zig[_ZR + i]:
            return u * zig[i]


# --- NumPy twins, bit for bit, for code that runs outside the kernels (train's RELAX) ---------
def bits_array(key, counters):
    """:func:`bits` over an array of counters, in NumPy (uint64 arithmetic wraps)."""
    z = np.uint64(key) + np.asarray(counters, dtype=np.uint64) * GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def substream_key(key, stream):
    """:func:`substream` in NumPy: the key of stream ``stream`` under ``key``."""
    return np.uint64(bits_array(np.uint64(key) ^ _SUBSTREAM, np.array([stream]))[0])


def uniform_array(key, counters):
    """:func:`uniform` over an array of counters, in NumPy: the same doubles in (0, 1)."""
    return ((bits_array(key, counters) >> _S12).astype(float) + 0.5) * _TWO_M52
