"""Deliberately wrong MVD and delta-method estimators (Normal family), one plausible bug each.

Like ``wrong_estimators.py``: unregistered :class:`Estimator` objects that the tests run
through the engine beside the real ones, to show that the checks which accept the real
estimators reject them.  Kernel names are unique (generated modules are named after them).
"""

import math

from gradvar.kernels import rng
from gradvar.kernels.jit import kernel
from gradvar.kernels.rng import normal, substream, uniform
from gradvar.model.gaussian import expansion_point
from gradvar.model.registry import Estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine

_STREAM = rng.stream_id("wrong-mvd")


@kernel
def wrong_mvd_rayleigh_for_maxwell(fp, objp, opts, aux, key, counter0, batch, work, g):
    """mvd with the sigma pair's Maxwell M replaced by a signed Rayleigh variate (the mu
    pair's law): biased for sigma."""
    x, v = work[0], work[3]
    mu, sigma = fp[0], fp[1]
    sk = substream(key, _STREAM)
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        c = (counter0 + m) * 8
        x[0] = mu + sigma * math.sqrt(-2.0 * math.log(uniform(sk, c)))
        plus = obj(x, objp, v)
        x[0] = mu - sigma * math.sqrt(-2.0 * math.log(uniform(sk, c + 1)))
        gm += plus - obj(x, objp, v)
        r = math.sqrt(-2.0 * math.log(uniform(sk, c + 2)))
        x[0] = mu + sigma * (r if uniform(sk, c + 3) < 0.5 else -r)
        plus = obj(x, objp, v)
        x[0] = mu + sigma * normal(sk, c + 5, fp[2:])
        gs += plus - obj(x, objp, v)
    g[0] = gm / (batch * sigma * math.sqrt(2.0 * math.pi))
    g[1] = gs / (batch * sigma)


@kernel
def wrong_mvd_missing_sqrt_pi(fp, objp, opts, aux, key, counter0, batch, work, g):
    """mvd-coupled's mu pair divided by 2 sigma instead of sigma sqrt(2 pi): a factor 1.25."""
    x, v = work[0], work[3]
    mu, sigma = fp[0], fp[1]
    sk = substream(key, _STREAM)
    gm = 0.0
    for m in range(batch):
        w = sigma * math.sqrt(-2.0 * math.log(uniform(sk, (counter0 + m) * 8)))
        x[0] = mu + w
        plus = obj(x, objp, v)
        x[0] = mu - w
        gm += plus - obj(x, objp, v)
    g[0] = gm / (batch * 2.0 * sigma)
    g[1] = 0.0


@kernel
def wrong_reparam_delta_partial(fp, objp, opts, aux, key, counter0, batch, work, g):
    """reparam-delta with partial derivatives (the expansion point held fixed): the mu
    coordinate loses - f'''(mu) sigma^2 (eps^2 - 1) / 2.  Unbiased, but a different variance."""
    y, h, st, v = work[0], work[1], work[2], work[3]
    sigma = fp[1]
    gm = 0.0
    gs = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        path(fp, 0.0, st, y, h)
        obj(y, objp, v)
        e = st[0]
        d = aux[2] * sigma * e
        gm += v[0] - d
        gs += (v[0] - aux[1] - d) * e
    g[0] = gm / batch
    g[1] = gs / batch + aux[2] * sigma


@kernel
def wrong_sf_delta_no_cv_mean(fp, objp, opts, aux, key, counter0, batch, work, g):
    """sf-delta without the + f''(mu) sigma of grad E[cv] in the sigma coordinate: biased."""
    x, st, v, s = work[0], work[2], work[3], work[4]
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
    g[1] = gs / batch


def _wrong(kern, requires, summary, **extra):
    return Estimator(
        name=kern.__name__.replace("_", "-"),
        summary=summary,
        formula="(deliberately wrong)",
        kernel=kern,
        requires=requires,
        **extra,
    )


MVD_RAYLEIGH_FOR_MAXWELL = _wrong(
    wrong_mvd_rayleigh_for_maxwell, "weak", "Rayleigh in place of Maxwell", f_evals=4
)
MVD_MISSING_SQRT_PI = _wrong(
    wrong_mvd_missing_sqrt_pi, "weak", "2 sigma in place of sigma sqrt(2pi)"
)
REPARAM_DELTA_PARTIAL = _wrong(
    wrong_reparam_delta_partial,
    "reparam",
    "partial derivatives through the expansion point",
    aux=expansion_point,
    needs_derivatives=3,
)
SF_DELTA_NO_CV_MEAN = _wrong(
    wrong_sf_delta_no_cv_mean,
    "score",
    "grad E[cv] missing its sigma term",
    aux=expansion_point,
    needs_derivatives=3,
)
