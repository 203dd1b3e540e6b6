"""Toy objectives f(x) with ground truth.

Each is one kernel ``f(x, objp, grad) -> value`` that also writes df/dx into ``grad``,
registered with its parameters and, where one exists, its closed-form E[f] and gradient.
``objp`` holds the parameters in the order they are declared (vectors first in full).
"""

import math

import numpy as np

from gradvar.kernels.jit import kernel
from gradvar.model.registry import Param, objective


def _weights(dim):
    return np.arange(1.0, dim + 1.0)


# --- normal family: gradient w.r.t. (mu, sigma); d = mu - k -------------------------------
# derivatives_at(z, values) -> [f, f', f'', f^(3)] at z (a float or an array), in NumPy: the
# delta-method estimators expand f around mu, the exact MVD moments integrate f.
# exact_moments: the Normal ground truth where the family's Gauss-Hermite rule does not
# converge (oscillating f, large omega sigma), see gradvar.truth_normal.
def _normal_exact(cell, est, baseline):
    from gradvar import truth_normal

    return truth_normal.injected_moments(cell, est, baseline)


def _constant(z, value):
    return np.full(np.shape(z), float(value))


def _linear_at(z, p):
    a = p["a"]
    return [a * np.asarray(z, dtype=float), _constant(z, a), _constant(z, 0.0), _constant(z, 0.0)]


def _quadratic_at(z, p):
    d = np.asarray(z, dtype=float) - p["k"]
    return [d * d, 2.0 * d, _constant(z, 2.0), _constant(z, 0.0)]


def _cosine_at(z, p):
    w, z = p["omega"], np.asarray(z, dtype=float)
    c, s = np.cos(w * z), np.sin(w * z)
    return [c, -w * s, -w * w * c, w**3 * s]


def _gaussian_at(z, p):
    k, z = p["k"], np.asarray(z, dtype=float)
    f = np.exp(-k * z * z)
    d2 = (4.0 * k * k * z * z - 2.0 * k) * f
    return [f, -2.0 * k * z * f, d2, (12.0 * k * k - 8.0 * k**3 * z * z) * z * f]


def _gaussian_closed(fam, p):
    """(E f, s_k) with s_k = 1 + 2 k sigma^2: E f = s_k^(-1/2) exp(-k mu^2 / s_k)."""
    k, mu, sigma = p["k"], fam["mu"], fam["sigma"]
    s = 1.0 + 2.0 * k * sigma * sigma
    return math.exp(-k * mu * mu / s) / math.sqrt(s), s


def _gaussian_grad(fam, p):
    """d/dmu E f = -2 k mu E f / s_k;
    d/dsigma E f = (4 k^2 sigma mu^2 / s_k^2 - 2 k sigma / s_k) E f."""
    k, mu, sigma = p["k"], fam["mu"], fam["sigma"]
    mean, s = _gaussian_closed(fam, p)
    dsigma = 4.0 * k * k * sigma * mu * mu / (s * s) - 2.0 * k * sigma / s
    return mean * np.array([-2.0 * k * mu / s, dsigma])


_NORMAL = dict(derivatives=3, exact_moments=_normal_exact)


def _cos_closed(fam, p):
    w, mu, s = p["omega"], fam["mu"], fam["sigma"]
    damp = math.exp(-0.5 * w * w * s * s)
    return damp, w, mu, s


@objective(
    "normal",
    "linear",
    params=(Param("a", 1.0, help="slope"),),
    summary="f(z) = a z",
    formula="a*z",
    exact_mean=lambda fam, p: p["a"] * fam["mu"],
    exact_grad=lambda fam, p: np.array([p["a"], 0.0]),
    degree=1,
    derivatives_at=_linear_at,
    **_NORMAL,
)
@kernel
def normal_linear(x, objp, grad):
    """f = a z, f' = a."""
    grad[0] = objp[0]
    return objp[0] * x[0]


@objective(
    "normal",
    "quadratic",
    params=(Param("k", 0.0, help="centre"),),
    summary="f(z) = (z - k)^2",
    formula="(z-k)^2",
    exact_mean=lambda fam, p: (fam["mu"] - p["k"]) ** 2 + fam["sigma"] ** 2,
    exact_grad=lambda fam, p: np.array([2.0 * (fam["mu"] - p["k"]), 2.0 * fam["sigma"]]),
    degree=2,
    derivatives_at=_quadratic_at,
    **_NORMAL,
)
@kernel
def normal_quadratic(x, objp, grad):
    """f = (z - k)^2, f' = 2 (z - k)."""
    d = x[0] - objp[0]
    grad[0] = 2.0 * d
    return d * d


@objective(
    "normal",
    "cosine",
    params=(Param("omega", 1.0, help="angular frequency"),),
    summary="f(z) = cos(omega z)",
    formula="cos(omega*z)",
    exact_mean=lambda fam, p: (lambda d, w, mu, s: math.cos(w * mu) * d)(*_cos_closed(fam, p)),
    exact_grad=lambda fam, p: (
        lambda d, w, mu, s: np.array([-w * math.sin(w * mu) * d, -w * w * s * math.cos(w * mu) * d])
    )(*_cos_closed(fam, p)),
    derivatives_at=_cosine_at,
    **_NORMAL,
)
@kernel
def normal_cosine(x, objp, grad):
    """f = cos(omega z), f' = -omega sin(omega z)."""
    grad[0] = -objp[0] * math.sin(objp[0] * x[0])
    return math.cos(objp[0] * x[0])


@objective(
    "normal",
    "gaussian",
    params=(Param("k", 1.0, positive=True, help="width parameter"),),
    summary="f(z) = exp(-k z^2)",
    formula="exp(-k*z^2)",
    exact_mean=lambda fam, p: _gaussian_closed(fam, p)[0],
    exact_grad=_gaussian_grad,
    derivatives_at=_gaussian_at,
    **_NORMAL,
)
@kernel
def normal_gaussian(x, objp, grad):
    """f = exp(-k z^2), f' = -2 k z f."""
    f = math.exp(-objp[0] * x[0] * x[0])
    grad[0] = -2.0 * objp[0] * x[0] * f
    return f


# --- categorical family: f on the simplex (one-hot samples or relaxed y) ------------------
@kernel(inline="always")
def categorical_linear_lanes(x, objp, grad, f, rows):
    """``categorical_linear`` per lane (column r of x, grad; f[r])."""
    for r in range(rows):
        f[r] = 0.0
    for j in range(x.shape[0]):
        for r in range(rows):
            grad[j, r] = objp[j]
            f[r] += objp[j] * x[j, r]


@kernel(inline="always")
def categorical_squared_lanes(x, objp, grad, f, rows):
    """``categorical_squared`` per lane (column r of x, grad; f[r])."""
    k = x.shape[0]
    for r in range(rows):
        f[r] = -objp[k]
    for j in range(k):
        for r in range(rows):
            f[r] += objp[j] * x[j, r]
    for j in range(k):
        for r in range(rows):
            grad[j, r] = 2.0 * f[r] * objp[j]
    for r in range(rows):
        f[r] = f[r] * f[r]


@objective(
    "categorical",
    "linear",
    params=(Param("w", _weights, vector=True, help="weights, default 1..K"),),
    summary="f(y) = w . y",
    formula="w.y",
    lanes=categorical_linear_lanes,
)
@kernel
def categorical_linear(x, objp, grad):
    """f = w . y, grad f = w."""
    total = 0.0
    for j in range(x.shape[0]):
        grad[j] = objp[j]
        total += objp[j] * x[j]
    return total


@objective(
    "categorical",
    "squared",
    params=(
        Param("w", _weights, vector=True, help="weights, default 1..K"),
        Param("t", 0.499, help="target"),
    ),
    summary="f(y) = (w . y - t)^2",
    formula="(w.y-t)^2",
    lanes=categorical_squared_lanes,
)
@kernel
def categorical_squared(x, objp, grad):
    """f = (w . y - t)^2, grad f = 2 (w . y - t) w."""
    k = x.shape[0]
    r = -objp[k]
    for j in range(k):
        r += objp[j] * x[j]
    for j in range(k):
        grad[j] = 2.0 * r * objp[j]
    return r * r


# --- bernoulli family: f(b) = (b - t)^2, gradient w.r.t. the logit ------------------------
def _bernoulli_squared_at(x, p):
    """[f, f', f''] at x (relaxed samples in (0, 1) too): RELAX trains tau through f''."""
    d = np.asarray(x, dtype=float) - p["t"]
    return [d * d, 2.0 * d, _constant(x, 2.0)]


@objective(
    "bernoulli",
    "squared",
    params=(Param("t", 0.499, help="target"),),
    summary="f(b) = (b - t)^2",
    formula="(b-t)^2",
    derivatives=2,
    derivatives_at=_bernoulli_squared_at,
)
@kernel
def bernoulli_squared(x, objp, grad):
    """f = (b - t)^2, f' = 2 (b - t)."""
    d = x[0] - objp[0]
    grad[0] = 2.0 * d
    return d * d


# --- multibernoulli family: f(b) = w . b and (w . b - t)^2, w_i = 1/D by default ----------
def _mb_p(fam):
    """(p, 1 - p) of every bit, each computed without cancellation."""
    from scipy.special import expit

    phi = np.atleast_1d(np.asarray(fam["logits"], dtype=float))
    return expit(phi), expit(-phi)


def _mb_squared_mean(fam, par):
    """E[(w.b - t)^2] = sum_i w_i^2 p_i (1 - p_i) + (sum_i w_i p_i - t)^2."""
    p, q = _mb_p(fam)
    w = np.asarray(par["w"], dtype=float)
    return float(w**2 @ (p * q) + (w @ p - par["t"]) ** 2)


def _mb_squared_grad(fam, par):
    """d/dphi_i = p_i (1 - p_i) [w_i^2 (1 - 2 p_i) + 2 w_i (sum_j w_j p_j - t)]."""
    p, q = _mb_p(fam)
    w = np.asarray(par["w"], dtype=float)
    return p * q * (w**2 * (q - p) + 2.0 * w * (w @ p - par["t"]))


def _uniform_weights(dim):
    """1/D each"""
    return np.full(dim, 1.0 / dim)


objective(
    "multibernoulli",
    "linear",
    params=(Param("w", _uniform_weights, vector=True, help="weights, default 1/D each"),),
    summary="f(b) = w . b",
    formula="w.b",
    exact_mean=lambda fam, par: float(np.asarray(par["w"], dtype=float) @ _mb_p(fam)[0]),
    exact_grad=lambda fam, par: np.asarray(par["w"], dtype=float) * np.prod(_mb_p(fam), axis=0),
    degree=1,
    lanes=categorical_linear_lanes,
)(categorical_linear)

objective(
    "multibernoulli",
    "squared",
    params=(
        Param("w", _uniform_weights, vector=True, help="weights, default 1/D each"),
        Param("t", 0.499, help="target"),
    ),
    summary="f(b) = (w . b - t)^2",
    formula="(w.b-t)^2",
    exact_mean=_mb_squared_mean,
    exact_grad=_mb_squared_grad,
    degree=2,
    lanes=categorical_squared_lanes,
)(categorical_squared)
