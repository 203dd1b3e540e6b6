"""The Gaussian side of the survey (Mohamed, Rosca, Figurnov & Mnih 2020, sections 6 and 7).

Measure-valued derivatives (``mvd``, ``mvd-coupled``) and the delta-method control variate
(``sf-delta``, ``reparam-delta``) on the Normal family N(mu, sigma^2), z = mu + sigma eps;
formulas in docs/math.md §7.  The MVD estimators draw their Rayleigh, Maxwell, sign and
uniform variates from their own noise stream (counters c STRIDE + j for sample c), so they
never move the family's noise.  Their exact moments are integrals over those variates
(:func:`gradvar.truth_normal.mvd_moments`); the delta estimators are functions of eps alone
and take the family's quadrature (and :func:`gradvar.truth_normal.injected_moments` where
that does not converge).
"""

import math

import numpy as np

from gradvar.kernels import rng
from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import STATE, H, S, V, X
from gradvar.kernels.rng import normal, substream, uniform
from gradvar.model.registry import estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine

STRIDE = 8  # counters per sample in an MVD estimator's own stream (6 used)
MVD_STREAM = rng.stream_id("mvd")
MVD_COUPLED_STREAM = rng.stream_id("mvd-coupled")
SQRT_2PI = math.sqrt(2.0 * math.pi)


def _mvd_exact(coupled):
    def exact(cell, baseline):
        from gradvar import truth_normal

        return truth_normal.mvd_moments(cell, coupled)

    return exact


def expansion_point(cell):
    """aux of the delta estimators: [f(mu), f'(mu), f''(mu), f'''(mu)] (per-cell work)."""
    at = cell.objective.derivatives_at
    return np.array([float(d) for d in at(float(cell.family_values["mu"]), cell.objective_values)])


@kernel
def _maxwell(key, c, zig):
    """Double-sided Maxwell M = +-sqrt(2 Gamma(3/2, 1)): 2 Gamma = -2 log U + N^2 (a chi-square
    with 3 degrees of freedom), the sign from a third draw (counters c .. c + 2)."""
    n = normal(key, c + 1, zig)
    r = math.sqrt(-2.0 * math.log(uniform(key, c)) + n * n)
    return r if uniform(key, c + 2) < 0.5 else -r


@estimator(
    "mvd",
    "measure-valued derivative: Rayleigh pair for mu, Maxwell-Gaussian pair for sigma",
    "(f(mu+sW)-f(mu-sW'))/(s sqrt(2pi)), (f(mu+sM)-f(mu+s eps))/s",
    requires="weak",
    f_evals=4,
    stream="mvd",
    exact=_mvd_exact(False),
)
@kernel
def mvd(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g_mu = (f(mu + sigma W) - f(mu - sigma W')) / (sigma sqrt(2 pi)), W, W' iid Rayleigh;
    g_sigma = (f(mu + sigma M) - f(mu + sigma eps)) / sigma, M double-sided Maxwell,
    eps ~ N(0, 1) independent; unbiased (Pflug 1989; Mohamed et al. 2020, section 6)."""
    x, v = work[X], work[V]
    mu, sigma = fp[0], fp[1]
    zig = fp[2:]
    sk = substream(key, MVD_STREAM)
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        c = (counter0 + m) * STRIDE
        x[0] = mu + sigma * math.sqrt(-2.0 * math.log(uniform(sk, c)))
        plus = obj(x, objp, v)
        x[0] = mu - sigma * math.sqrt(-2.0 * math.log(uniform(sk, c + 1)))
        gm += plus - obj(x, objp, v)
        x[0] = mu + sigma * _maxwell(sk, c + 2, zig)
        plus = obj(x, objp, v)
        x[0] = mu + sigma * normal(sk, c + 5, zig)
        gs += plus - obj(x, objp, v)
    g[0] = gm / (batch * sigma * SQRT_2PI)
    g[1] = gs / (batch * sigma)


@estimator(
    "mvd-coupled",
    "measure-valued derivative with coupled pairs: W' = W, eps = U M",
    "(f(mu+sW)-f(mu-sW))/(s sqrt(2pi)), (f(mu+sM)-f(mu+sUM))/s",
    requires="weak",
    f_evals=4,
    stream="mvd-coupled",
    exact=_mvd_exact(True),
)
@kernel
def mvd_coupled(fp, objp, opts, aux, key, counter0, batch, work, g):
    """``mvd`` with common variates: g_mu = (f(mu + sigma W) - f(mu - sigma W)) / (sigma
    sqrt(2 pi)); g_sigma = (f(mu + sigma M) - f(mu + sigma U M)) / sigma, U ~ U(0, 1) (U M is
    standard normal); unbiased (Mohamed et al. 2020, section 6.3)."""
    x, v = work[X], work[V]
    mu, sigma = fp[0], fp[1]
    zig = fp[2:]
    sk = substream(key, MVD_COUPLED_STREAM)
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        c = (counter0 + m) * STRIDE
        w = sigma * math.sqrt(-2.0 * math.log(uniform(sk, c)))
        x[0] = mu + w
        plus = obj(x, objp, v)
        x[0] = mu - w
        gm += plus - obj(x, objp, v)
        sm = sigma * _maxwell(sk, c + 2, zig)
        x[0] = mu + sm
        plus = obj(x, objp, v)
        x[0] = mu + uniform(sk, c + 5) * sm
        gs += plus - obj(x, objp, v)
    g[0] = gm / (batch * sigma * SQRT_2PI)
    g[1] = gs / (batch * sigma)


@estimator(
    "sf-delta",
    "score function with the delta-method control variate (2nd-order Taylor at mu)",
    "(f(z)-cv(z)) dlogp(z) - f'''(mu) s^2 (eps^2-1)/2 + grad E[cv]",
    requires="score",
    aux=expansion_point,
    needs_derivatives=3,
)
@kernel
def sf_delta(fp, objp, opts, aux, key, counter0, batch, work, g):
    """cv(z) = f(mu) + f'(mu) (z - mu) + f''(mu) (z - mu)^2 / 2, aux = [f, f', f'', f'''](mu);
    g_mu = (f(z) - cv(z)) eps / sigma - f'''(mu) sigma^2 eps^2 / 2 + f'(mu) + f'''(mu) sigma^2 / 2,
    g_sigma = (f(z) - cv(z)) (eps^2 - 1) / sigma + f''(mu) sigma (derivatives total through the
    expansion point); unbiased, variance 0 for quadratic f (Mohamed et al. 2020, section 7.2)."""
    x, st, v, s = work[X], work[STATE], work[V], work[S]
    sigma = fp[1]
    half3 = 0.5 * aux[3] * sigma * sigma
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        e = st[0]
        d = sigma * e
        r = obj(x, objp, v) - (aux[0] + d * (aux[1] + 0.5 * aux[2] * d))
        gm += r * s[0] - half3 * e * e
        gs += r * s[1]
    g[0] = gm / batch + aux[1] + half3
    g[1] = gs / batch + aux[2] * sigma


@estimator(
    "reparam-delta",
    "reparameterization with the delta-method control variate (2nd-order Taylor at mu)",
    "f'(z) dz/dtheta - d cv(z; mu)/dtheta + grad E[cv]",
    requires="reparam",
    aux=expansion_point,
    needs_derivatives=3,
)
@kernel
def reparam_delta(fp, objp, opts, aux, key, counter0, batch, work, g):
    """aux = [f, f', f'', f'''](mu); g_mu = f'(z) - f''(mu) sigma eps
    - f'''(mu) sigma^2 (eps^2 - 1) / 2, g_sigma = (f'(z) - f'(mu) - f''(mu) sigma eps) eps
    + f''(mu) sigma (derivatives total through the expansion point); unbiased, variance 0 for
    quadratic f (Mohamed et al. 2020, section 7.2)."""
    y, h, st, v = work[X], work[H], work[STATE], work[V]
    sigma = fp[1]
    half3 = 0.5 * aux[3] * sigma * sigma
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        path(fp, 0.0, st, y, h)
        obj(y, objp, v)
        e = st[0]
        d = aux[2] * sigma * e
        gm += v[0] - d - half3 * (e * e - 1.0)
        gs += (v[0] - aux[1] - d) * e
    g[0] = gm / batch
    g[1] = gs / batch + aux[2] * sigma
