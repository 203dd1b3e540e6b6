"""Deliberately wrong Bernoulli estimators (see ``wrong_estimators.py``): each is a kernel of
``gradvar/model/bernoulli.py`` with one plausible bug, never registered, run through the
engine by the tests to show that the checks accepting the right estimator reject it.
"""

import math

from gradvar.kernels.fastmath import sigmoid as _sigmoid
from gradvar.kernels.jit import kernel
from gradvar.kernels.rng import substream, uniform
from gradvar.model.bernoulli import REBAR_STREAM
from gradvar.model.options import ETA, TAU
from gradvar.model.registry import Estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine


@kernel
def wrong_arm_u_minus_one(fp, objp, opts, aux, key, counter0, batch, work, g):
    """ARM with (u - 1) instead of (u - 1/2): still unbiased (E f(b1) = E f(b2)), but the
    variance is wrong."""
    b1, b2, st, v = work[0], work[1], work[2], work[3]
    d = g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        for i in range(d):
            b1[i] = 1.0 if st[i] > -fp[i] else 0.0
            b2[i] = 1.0 if st[i] < fp[i] else 0.0
        df = obj(b1, objp, v) - obj(b2, objp, v)
        for i in range(d):
            g[i] += df * (_sigmoid(st[i]) - 1.0)
    for i in range(d):
        g[i] /= batch


@kernel
def wrong_disarm_no_sign(fp, objp, opts, aux, key, counter0, batch, work, g):
    """DisARM without the sign (-1)^{b2_i}: biased."""
    b1, b2, st, v = work[0], work[1], work[2], work[3]
    d = g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        for i in range(d):
            b1[i] = 1.0 if st[i] > -fp[i] else 0.0
            b2[i] = 1.0 if st[i] < fp[i] else 0.0
        half = 0.5 * (obj(b1, objp, v) - obj(b2, objp, v))
        for i in range(d):
            if b1[i] != b2[i]:
                g[i] += half * _sigmoid(abs(fp[i]))
    for i in range(d):
        g[i] /= batch


@kernel
def wrong_rebar_dzt(fp, objp, opts, aux, key, counter0, batch, work, g):
    """One-bit REBAR with dzt/dphi = 1 (z~ differentiated as if it were phi + const): biased."""
    x, st, v = work[0], work[2], work[3]
    tau, eta = opts[TAU], opts[ETA]
    phi = fp[0]
    p, q = _sigmoid(phi), _sigmoid(-phi)
    vkey = substream(key, REBAR_STREAM)
    g[0] = 0.0
    for m in range(batch):
        c = counter0 + m
        noise(fp, key, c, st)
        z = phi + st[0]
        bit = 1.0 if z > 0.0 else 0.0
        x[0] = bit
        fb = obj(x, objp, v)
        x[0] = _sigmoid(z / tau)
        obj(x, objp, v)
        g[0] += eta * v[0] * _sigmoid(z / tau) * _sigmoid(-z / tau) / tau
        w = uniform(vkey, c)
        if bit == 1.0:
            zt = phi + math.log(q + p * w) - math.log(p * (1.0 - w))
        else:
            zt = phi + math.log(q * w) - math.log1p(-q * w)
        x[0] = _sigmoid(zt / tau)
        ft = obj(x, objp, v)
        g[0] += (fb - eta * ft) * (bit - p) - eta * v[0] * _sigmoid(zt / tau) * _sigmoid(
            -zt / tau
        ) / tau
    g[0] /= batch


WRONG_ARM = Estimator("wrong-arm", "ARM with u - 1", "", wrong_arm_u_minus_one, requires="bits")
WRONG_DISARM = Estimator(
    "wrong-disarm", "DisARM without the sign", "", wrong_disarm_no_sign, requires="bits"
)
WRONG_REBAR = Estimator(
    "wrong-rebar",
    "REBAR with dzt/dphi = 1",
    "",
    wrong_rebar_dzt,
    requires="bits",
    options=("tau", "eta"),
)
