"""Entries defined outside gradvar, one each: a family (exponential, with its own quadrature
rule), an objective, an estimator with its own option and its own noise stream, and a
baseline.  tests/test_extension.py imports this module in a fresh interpreter and checks
that the CLI options, TOML keys, CSV columns, ``gradvar list``, validation and ground truth
all pick them up.
"""

import math

import numpy as np

from gradvar import truth
from gradvar.kernels import rng
from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import STATE, S, V, X
from gradvar.model.registry import (
    ESTIMATORS,
    Baseline,
    Family,
    Option,
    Param,
    estimator,
    objective,
    register_baseline,
    register_family,
    register_option,
)

noise = score = path = vjp = obj = None  # bound per combination by the engine


# --- a family: Exponential(rate lam), z = E / lam with E ~ Exp(1) ------------------------
@kernel
def expo_noise(fp, key, counter, state):
    """E = -log U ~ Exp(1)."""
    state[0] = -math.log(rng.uniform(key, counter))


@kernel
def expo_score(fp, state, x, s):
    """z = E / lam; d/dlam log p(z) = 1/lam - z."""
    z = state[0] / fp[0]
    x[0] = z
    s[0] = 1.0 / fp[0] - z


@kernel
def expo_path(fp, tau, state, y, h):
    z = state[0] / fp[0]
    y[0] = z
    h[0] = z


@kernel
def expo_vjp(fp, tau, state, y, v, g):
    """dz/dlam = -E / lam^2."""
    g[0] += v[0] * (-state[0] / (fp[0] * fp[0]))


def laguerre(values, nodes):
    """Gauss-Laguerre: E over Exp(1) (the weights sum to 1)."""
    x, w = np.polynomial.laguerre.laggauss(nodes)
    return x[:, None], w


register_family(
    Family(
        name="exponential",
        params=(Param("lam", 2.0, positive=True, help="rate lambda"),),
        capabilities=frozenset({"score", "reparam"}),
        summary="Exponential(rate lam), gradient w.r.t. lam",
        prepare=lambda values: np.array([float(values["lam"])]),
        dim=lambda values: 1,
        coords=lambda values: ["lam"],
        noise=expo_noise,
        score=expo_score,
        path=expo_path,
        vjp=expo_vjp,
        state_size=lambda dim: 1,
        default_objective="square",
        default_estimators=("sf", "reparam"),
        variable="z",
        quadrature=laguerre,
        quadrature_nodes=(20, 40, 80),
        injection_exact=frozenset({"score", "reparam"}),
    )
)


# --- an objective: f(z) = c z^2, E f = 2 c / lam^2 ---------------------------------------
@objective(
    "exponential",
    "square",
    params=(Param("c", 1.0, help="scale"),),
    summary="f(z) = c z^2",
    formula="c*z^2",
    exact_mean=lambda fam, p: 2.0 * p["c"] / fam["lam"] ** 2,
    exact_grad=lambda fam, p: np.array([-4.0 * p["c"] / fam["lam"] ** 3]),
    degree=2,
)
@kernel
def expo_square(x, objp, grad):
    grad[0] = 2.0 * objp[0] * x[0]
    return objp[0] * x[0] * x[0]


# --- an estimator with its own option and noise stream -----------------------------------
GAMMA = register_option(Option("gamma", 1.0, "Amplitude of sf-jitter's added noise"))
JITTER = rng.stream_id("sf-jitter")


def _jitter_exact(cell, baseline):
    """sf's exact moments plus the added noise: Var[gamma (2v - 1)] = gamma^2 / 3."""
    mean, var = truth.exact_moments(cell, ESTIMATORS["sf"])
    return mean, var + cell.options["gamma"] ** 2 / 3.0 / cell.batch


@estimator(
    "sf-jitter",
    "score function plus zero-mean noise from its own stream",
    "f(x) dlogp(x) + gamma (2 v - 1)",
    requires="score",
    options=("gamma",),
    stream="sf-jitter",
    exact=_jitter_exact,
)
@kernel
def sf_jitter(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/M) sum_m [f(x_m) s(x_m) + gamma (2 v_m - 1)], v from the stream 'sf-jitter'
    at counters c P + j; unbiased, variance that of sf plus gamma^2 / 3 (per sample)."""
    x, st, v, s = work[X], work[STATE], work[V], work[S]
    own = rng.substream(key, JITTER)
    p = g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        c = counter0 + m
        noise(fp, key, c, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(p):
            g[j] += f * s[j] + opts[GAMMA] * (2.0 * rng.uniform(own, c * p + j) - 1.0)
    for j in range(p):
        g[j] /= batch


# --- a baseline: half the mean --------------------------------------------------------------
def _half(sum_f, sum_f_s2, sum_s2, count):
    return np.full(len(sum_s2), 0.5 * sum_f / count)


register_baseline(Baseline("half", "b = E[f] / 2 from an independent pilot batch", fixed=_half))
