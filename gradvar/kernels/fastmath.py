"""Inline, vectorisable ``log``, ``log1p``, ``exp`` and ``sigmoid`` for the discrete kernels.

This Numba build has no SVML, so ``math.log``/``math.exp`` in a kernel are scalar libm calls
(about 4 ns each) that also stop LLVM from vectorising the loop around them.  These functions
are plain arithmetic on the float64 and its int64 bit pattern (``np.float64(x).view``), with
selects instead of branches, so they inline and a loop of them over the classes compiles to
packed instructions (checked in tests/test_fastmath.py).

``log_normal`` is ``log`` without the special cases, for arguments known to be positive
normal numbers (the uniforms of :mod:`gradvar.kernels.rng` and their logs); it returns the
same value as ``log`` there.

Schemes (the classical fdlibm reductions, coefficients fitted here):

- ``exp(x)``: k = round(x / ln 2) by the 1.5 2^52 shift, r = x - k ln2_hi - k ln2_lo
  (|r| <= ln 2 / 2; k ln2_hi is exact), e^r = 1 + r + r^2 P(r) with P of degree 10, and
  2^k applied as 2^(k // 2) 2^(k - k // 2), so that subnormal results round once and
  x up to 709.78 does not overflow early.
- ``log(x)``: x = 2^e m with m in [sqrt(2)/2, sqrt(2)) read off the bits (subnormals scaled
  by 2^54 first), f = m - 1, s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)),
  R(z) = z Q(z) with Q of degree 6 (2 atanh(s) = 2 s + s R(s^2)).
- ``log1p(x)``: the same on u = 1 + x, plus the first-order correction (1 + x - u) / u for
  the rounding of u (computed exactly: x - (u - 1) for u < 2, 1 - (u - x) beyond).

P and Q are Chebyshev fits (near-minimax; ``mpmath.chebyfit`` at 50 digits: P degree 10 on
[-ln 2 / 2, ln 2 / 2] within 1.4e-18, Q degree 6 on [0, (3 - 2 sqrt 2)^2] within 3.1e-16,
both far below the final rounding).  Measured maximum error against ``math`` (tests, 1e6+
points per function including the ends of the uniforms, subnormals and the overflow and
underflow edges): 1 ulp for ``log``, ``log1p`` and ``exp`` (normal results; subnormal
results of ``exp`` within 1 ulp of the subnormal grid).  Special values as the kernels need
them: log(0) = -inf, log(inf) = inf, log(x < 0) = nan; log1p(-1) = -inf; exp(x > 709.79) =
inf, exp(x < -745.14) = 0, exp(-inf) = 0; nan propagates.  (The sign of a zero result is not
kept: log1p(-0.0) = 0.0.)
"""

import numpy as np

from gradvar.kernels.jit import kernel

INF = float("inf")
NAN = float("nan")
LN2_HI = float.fromhex("0x1.62e42fee00000p-1")  # ln 2 with 21 trailing zero bits: k LN2_HI exact
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # ln 2 - LN2_HI
LOG2E = float.fromhex("0x1.71547652b82fep0")  # 1 / ln 2
SHIFT = 1.5 * 2.0**52  # x + SHIFT - SHIFT rounds x to an integer (|x| < 2^51)
TINY = 2.0**-1022  # the smallest normal double
TWO54 = 2.0**54
EXP_LO, EXP_HI = -746.0, 710.0  # exp is 0 below and inf above: clamp k into range
SQRT_HALF_BITS = np.int64(0x3FE6A09E667F3BCD)  # bits of sqrt(2)/2
BIAS = np.int64(1023)
S52 = np.int64(52)

# e^r = 1 + r + r^2 (P0 + P1 r + ... + P10 r^10), |r| <= ln 2 / 2
P0 = 0.5
P1 = 0.1666666666666667
P2 = 0.04166666666666667
P3 = 0.008333333333326141
P4 = 0.0013888888888883752
P5 = 0.00019841269874800493
P6 = 2.4801587325533363e-05
P7 = 2.7557255425746435e-06
P8 = 2.7557273661348637e-07
P9 = 2.510520637395701e-08
P10 = 2.0914679376583935e-09

# (2 atanh(s) - 2 s) / s = z (Q1 + Q2 z + ... + Q7 z^6), z = s^2 <= (3 - 2 sqrt 2)^2
Q1 = 0.666666666666667
Q2 = 0.39999999999899505
Q3 = 0.28571428625975487
Q4 = 0.2222221113479508
Q5 = 0.18182889125261723
Q6 = 0.15331721600556042
Q7 = 0.14616449685043406


@kernel
def _bits(x):
    return np.float64(x).view(np.int64)


@kernel
def _double(i):
    return np.int64(i).view(np.float64)


@kernel
def _log_reduce(x):
    """(e, f) with x = 2^e (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)), for positive normal x."""
    ix = _bits(x)
    e = (ix - SQRT_HALF_BITS) >> S52
    return e, _double(ix - (e << S52)) - 1.0


@kernel
def _log_tail(f):
    """(s, hfsq, R) of log(1 + f) = f - hfsq + s (hfsq + R)."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (Q1 + w * (Q3 + w * (Q5 + w * Q7))) + w * (Q2 + w * (Q4 + w * Q6))
    return s, 0.5 * f * f, r


@kernel
def log_normal(x):
    """Natural logarithm of a positive, finite, normal x (>= 2^-1022), within 1 ulp, with no
    special cases: the noise transforms, whose arguments are such by construction."""
    e, f = _log_reduce(x)
    k = float(e)
    s, hfsq, r = _log_tail(f)
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)


@kernel
def log(x):
    """Natural logarithm, within 1 ulp (module docstring); log(0) = -inf, log(x < 0) = nan."""
    sub = x < TINY
    e, f = _log_reduce(x * TWO54 if sub else x)
    k = float(e) - (54.0 if sub else 0.0)
    s, hfsq, r = _log_tail(f)
    y = k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
    return y if (x > 0.0) & (x < INF) else (-INF if x == 0.0 else (x if x > 0.0 else NAN))


@kernel
def log1p(x):
    """log(1 + x), within 1 ulp (module docstring); log1p(-1) = -inf, log1p(x < -1) = nan."""
    u = 1.0 + x
    # (1 + x - u) / u; u = 0 (x = -1) is replaced by the result below (no division by 0
    # under NUMBA_DISABLE_JIT either)
    c = (x - (u - 1.0) if u < 2.0 else 1.0 - (u - x)) / (u if u != 0.0 else 1.0)
    e, f = _log_reduce(u)
    k = float(e)
    s, hfsq, r = _log_tail(f)
    y = k * LN2_HI - ((hfsq - (s * (hfsq + r) + (k * LN2_LO + c))) - f)
    return y if (u > 0.0) & (u < INF) else (-INF if u == 0.0 else (u if u > 0.0 else NAN))


@kernel
def exp(x):
    """e^x, within 1 ulp (module docstring); 0 below -745.14, inf above 709.79."""
    xc = min(max(x, EXP_LO), EXP_HI)
    kf = (xc * LOG2E + SHIFT) - SHIFT
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = P8 + r * (P9 + r * P10)
    p = P4 + r * (P5 + r * (P6 + r * (P7 + r * p)))
    p = P0 + r * (P1 + r * (P2 + r * (P3 + r * p)))
    er = 1.0 + (r + r * r * p)
    k = np.int64(kf if x == x else 0.0)  # nan is returned below; int64(nan) would raise
    k1 = k >> np.int64(1)
    scale1 = _double((k1 + BIAS) << S52)
    scale2 = _double((k - k1 + BIAS) << S52)
    return er * scale1 * scale2 if x == x else x


@kernel
def sigmoid(a):
    """1 / (1 + e^-a), as e^-|a| / (1 + e^-|a|) for a < 0 (no overflow, no cancellation)."""
    e = exp(-abs(a))
    return 1.0 / (1.0 + e) if a >= 0.0 else e / (1.0 + e)
