"""gradvar.kernels.fastmath against math (glibc) and mpmath: the stated error bounds, the
special values the kernels rely on, and the packed (vectorised) code the loops compile to."""

import math
import os
import re

import mpmath
import numba
import numpy as np
import pytest
from scipy.special import expit

from gradvar.kernels import fastmath, jit, rng
from gradvar.model import families

jit.materialize()
TWO_M52 = 2.0**-52


def _vectorised(f):
    @numba.njit(error_model="numpy")
    def run(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = f(x[i])
        return out

    return run


LOG = _vectorised(fastmath.log)
LOG_NORMAL = _vectorised(fastmath.log_normal)
LOG1P = _vectorised(fastmath.log1p)
EXP = _vectorised(fastmath.exp)
SIGMOID = _vectorised(fastmath.sigmoid)


def ulps(got, ref):
    """|got - ref| in units of the spacing of doubles at ref (5e-324 for subnormals)."""
    ref = np.asarray(ref, dtype=float)
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def reference(func, x):
    return np.array([func(v) for v in x])


def uniform_ends(n):
    """The n smallest and n largest uniforms gradvar draws: (i + 1/2) 2^-52 and 1 - that."""
    low = (np.arange(n) + 0.5) * TWO_M52
    return np.concatenate([low, 1.0 - low])


def log_points(n, seed=0):
    gen = np.random.default_rng(seed)
    return {
        "uniform (0, 1)": (np.floor(gen.random(n) * 2**52) + 0.5) * TWO_M52,
        "uniform ends": uniform_ends(n // 2),
        "[0.5, 2]": gen.uniform(0.5, 2.0, n),
        "-log u of the ends": -np.log(uniform_ends(n // 2)),
        "2^[-1074, 1024)": np.exp2(gen.uniform(-1074, 1024, n)),
        "subnormals": gen.integers(1, 2**52, n) * 5e-324,
        "near 1": 1.0 + gen.uniform(-1e-8, 1e-8, n),
    }


def log1p_points(n, seed=1):
    gen = np.random.default_rng(seed)
    return {
        "-u, u uniform": -(np.floor(gen.random(n) * 2**52) + 0.5) * TWO_M52,
        "-u, u at the ends": -uniform_ends(n // 2),
        "tiny": gen.uniform(-1e-10, 1e-10, n),
        "[-0.5, 3]": gen.uniform(-0.5, 3.0, n),
        "2^[-1074, 1024)": np.exp2(gen.uniform(-1074, 1024, n)),
        "ratios E_j / (pi_j E_i)": np.exp(gen.uniform(-40, 40, n)),
    }


def exp_points(n, seed=2):
    gen = np.random.default_rng(seed)
    return {
        "[-745.2, 709.78]": gen.uniform(-745.2, 709.78, n),
        "[-1, 1]": gen.uniform(-1.0, 1.0, n),
        "softmax gaps [-50, 0]": gen.uniform(-50.0, 0.0, n),
        "overflow edge [705, 709.78]": gen.uniform(705.0, 709.78, n),
        "subnormal results [-745.13, -708.4]": gen.uniform(-745.13, -708.4, n),
    }


CASES = {
    "log": (LOG, math.log, log_points),
    "log1p": (LOG1P, math.log1p, log1p_points),
    "exp": (EXP, math.exp, exp_points),
}


def check_within_one_ulp(name, n):
    vec, ref, points = CASES[name]
    for label, x in points(n).items():
        err = ulps(vec(x), reference(ref, x))
        assert np.all(np.isfinite(err)), (name, label)
        assert err.max() <= 1.0, (name, label, err.max(), x[np.argmax(err)])


@pytest.mark.parametrize("name", list(CASES))
def test_within_one_ulp_of_math(name):
    check_within_one_ulp(name, 100_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_within_one_ulp_of_math_million_points_slow(name):
    check_within_one_ulp(name, 2_000_000)


def test_the_error_measure_sees_two_ulps():
    """The check above fails an implementation 2 ulp off (e.g. ln2_lo dropped for small k)."""
    x = log_points(10_000)["[0.5, 2]"]
    wrong = np.nextafter(np.nextafter(LOG(x), np.inf), np.inf)
    assert ulps(wrong, reference(math.log, x)).max() > 1.0
    big = np.exp2(np.arange(-1000.0, 1000.0, 7.0)) * 1.3
    no_lo = np.array([fastmath.LN2_HI * math.floor(math.log2(v)) for v in big])
    assert ulps(no_lo + np.log(1.3), reference(math.log, big)).max() > 1.0


def test_true_error_against_mpmath():
    """Against 50-digit mpmath, not glibc: within 1 ulp (about 0.5 typical, below 1 ulp max)."""
    mpmath.mp.dps = 50
    gen = np.random.default_rng(5)
    x = np.concatenate([gen.uniform(1e-300, 1.0, 2000), np.exp(gen.uniform(-700, 700, 2000))])
    for vec, func, arg in (
        (LOG, mpmath.log, x),
        (LOG1P, mpmath.log1p, x),
        (EXP, mpmath.exp, np.log(x)),
    ):
        exact = np.array([float(func(mpmath.mpf(v))) for v in arg])
        assert ulps(vec(arg), exact).max() <= 1.0


def test_log_normal_is_log_on_normal_numbers():
    x = np.concatenate([v for v in log_points(20_000).values()])
    x = x[x >= 2.0**-1022]
    assert np.array_equal(LOG_NORMAL(x), LOG(x))


def test_special_values():
    inf, nan = math.inf, math.nan
    log = LOG(np.array([0.0, -0.0, inf, -1.0, -inf, nan, 5e-324, 1.7976931348623157e308]))
    assert log[:3].tolist() == [-inf, -inf, inf] and np.isnan(log[3:6]).all()
    assert log[6] == math.log(5e-324) and log[7] == math.log(1.7976931348623157e308)
    l1p = LOG1P(np.array([-1.0, inf, 0.0, -2.0, -inf, nan, 1.7976931348623157e308]))
    assert l1p[:3].tolist() == [-inf, inf, 0.0] and np.isnan(l1p[3:6]).all()
    assert l1p[6] == math.log1p(1.7976931348623157e308)
    x = np.array([709.78, 709.79, 710.0, 1e300, inf, -745.13, -745.14, -746.0, -1e300, -inf, nan])
    e = EXP(x)
    assert e[0] == math.exp(709.78) and np.isinf(e[1:5]).all()
    assert e[5] == 5e-324 and (e[6:10] == 0.0).all() and np.isnan(e[10])


def test_sigmoid_against_expit():
    a = np.concatenate([np.linspace(-800, 800, 100_001), [-1e3, 1e3, -1e300, 1e300, 0.0]])
    s = SIGMOID(a)
    assert np.all(np.isfinite(s)) and s[-5:].tolist() == [0.0, 1.0, 0.0, 1.0, 0.5]
    ref = expit(a)
    assert ulps(s, ref)[ref > 1e-300].max() <= 3.0


def test_gumbel_and_logistic_finite_at_the_uniform_ends():
    """The smallest and largest uniforms give finite noise, within 2 ulp of libm's formula."""
    u = uniform_ends(1000)
    g = -LOG_NORMAL(-LOG_NORMAL(u))
    assert np.all(np.isfinite(g)) and g.min() > -4.0 and g.max() < 37.0
    assert ulps(g, reference(lambda v: -math.log(-math.log(v)), u)).max() <= 2.0
    lg = LOG_NORMAL(u) - LOG_NORMAL(1.0 - u)
    ref = reference(lambda v: math.log(v) - math.log1p(-v), u)
    assert np.all(np.isfinite(lg)) and np.abs(lg - ref).max() <= 4 * np.spacing(np.abs(ref)).max()


# --- the loops vectorise --------------------------------------------------------------------
def _isa():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    return "avx512f" if "avx512f" in flags else ("avx2" if "avx2" in flags else None)


@numba.njit(error_model="numpy")
def _noise_loop(fp, key, n, state):
    acc = 0.0
    for c in range(n):
        families.categorical_noise(fp, key, c, state)
        acc += state[0]
    return acc


@numba.njit(error_model="numpy")
def _softmax_loop(fp, state, n, y, h):
    for _ in range(n):
        families.categorical_path(fp, 0.5, state, y, h)
    return y[0]


@pytest.mark.skipif(_isa() is None, reason="packed double instructions need AVX2 or AVX-512")
def test_class_loops_compile_to_packed_instructions_without_libm_calls():
    """The Gumbel noise over the classes and the softmax's exp are packed (ymm/zmm) code with
    no call to libm's log or exp left (this machine: see /proc/cpuinfo; AVX-512 -> zmm)."""
    k = 10
    fp = np.concatenate([np.zeros(k), np.full(k, 1.0 / k)])
    state, y, h = np.zeros(k), np.zeros(k), np.zeros(k)
    _noise_loop(fp, rng.stream_key(0, rng.MAIN), 2, state)
    _softmax_loop(fp, state, 2, y, h)
    reg = "zmm" if _isa() == "avx512f" else "ymm"
    for func in (_noise_loop, _softmax_loop):
        asm = func.inspect_asm(func.signatures[0])
        packed = re.findall(rf"\bv(?:mul|add|sub|div)pd\s[^\n]*%{reg}", asm)
        assert len(packed) >= 10, func
        assert not re.search(r"\$(log|log1p|exp|pow)\b", asm), func


def test_special_values_without_the_jit_too():
    """Under NUMBA_DISABLE_JIT (every kernel must run as Python) the special values are the
    compiled ones: no ZeroDivisionError at log1p(-1), no int64(nan) in exp."""
    import subprocess
    import sys

    code = (
        "from gradvar.kernels import fastmath as f\n"
        "print(f.log1p(-1.0), f.log1p(-2.0), f.exp(float('nan')), f.sigmoid(float('nan')), "
        "f.log(0.0), f.exp(-1e4), f.exp(1e4))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["-inf", "nan", "nan", "nan", "-inf", "0.0", "inf"]
    compiled = [fastmath.log1p(-1.0), fastmath.exp(math.nan), fastmath.log(0.0)]
    assert compiled[0] == -math.inf and math.isnan(compiled[1]) and compiled[2] == -math.inf
