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
)
@kernel
def normal_cosine(x, objp, grad):
    """f = cos(omega z), f' = -omega sin(omega z)."""
    grad[0] = -objp[0] * math.sin(objp[0] * x[0])
    return math.cos(objp[0] * x[0])


# --- categorical family: f on the simplex (one-hot samples or relaxed y) ------------------
@objective(
    "categorical",
    "linear",
    params=(Param("w", _weights, vector=True, help="weights, default 1..K"),),
    summary="f(y) = w . y",
    formula="w.y",
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
@objective(
    "bernoulli",
    "squared",
    params=(Param("t", 0.499, help="target"),),
    summary="f(b) = (b - t)^2",
    formula="(b-t)^2",
)
@kernel
def bernoulli_squared(x, objp, grad):
    """f = (b - t)^2, f' = 2 (b - t)."""
    d = x[0] - objp[0]
    grad[0] = 2.0 * d
    return d * d
