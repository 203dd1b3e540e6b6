"""Deliberately wrong straight-through estimators of the categorical (never registered).

Each is the kernel of ``gradvar/model/categorical.py`` with one plausible bug; the tests
assert that the check which accepts the right estimator rejects it.  Categorical only
(K >= 2 coordinates).
"""

import math

from gradvar.kernels import fastmath
from gradvar.kernels.jit import kernel
from gradvar.model.options import TAU
from gradvar.model.registry import ESTIMATORS, Estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine


@kernel
def wrong_st_no_temperature(fp, objp, opts, aux, key, counter0, batch, work, g):
    """st with J(s) = diag(s) - s s^T: the 1/tau of the softmax Jacobian dropped."""
    x, st, v, s, y = work[0], work[2], work[3], work[4], work[1]
    tau, p = opts[TAU], g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        obj(x, objp, v)
        top, total = fp[0], 0.0
        for j in range(p):
            top = max(top, fp[j])
        for j in range(p):
            y[j] = math.exp((fp[j] - top) / tau)
            total += y[j]
        yv = 0.0
        for j in range(p):
            y[j] /= total
            yv += y[j] * v[j]
        for j in range(p):
            g[j] += y[j] * (v[j] - yv)
    for j in range(p):
        g[j] /= batch


@kernel
def wrong_reinmax_pi(fp, objp, opts, aux, key, counter0, batch, work, g):
    """reinmax with pi1 = (D + pi) / 2: softmax(o) where softmax(o / tau) belongs (equal at
    tau = 1 only)."""
    x, st, v, s, y = work[0], work[2], work[3], work[4], work[1]
    p = g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        obj(x, objp, v)
        yv, pv = 0.0, 0.0
        for j in range(p):
            y[j] = 0.5 * (x[j] + fp[p + j])
            yv += y[j] * v[j]
            pv += fp[p + j] * v[j]
        for j in range(p):
            g[j] += 2.0 * y[j] * (v[j] - yv) - 0.5 * fp[p + j] * (v[j] - pv)
    for j in range(p):
        g[j] /= batch


@kernel
def wrong_rao_unconditional(fp, objp, opts, aux, key, counter0, batch, work, g):
    """gumbel-rao whose inner Gumbels ignore the sampled class: y = softmax((o + G') / tau)
    with G' fresh and unconditional (the Rao-Blackwellisation conditions on the class)."""
    x, st, v, s, y = work[0], work[2], work[3], work[4], work[1]
    tau, p = opts[TAU], g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        obj(x, objp, v)
        noise(fp, key, counter0 + m + 7919, st)  # another sample's Gumbels: not conditioned
        top = -1e300
        for j in range(p):
            top = max(top, fp[j] + st[j])
        total = 0.0
        for j in range(p):
            y[j] = math.exp((fp[j] + st[j] - top) / tau)
            total += y[j]
        yv = 0.0
        for j in range(p):
            y[j] /= total
            yv += y[j] * v[j]
        for j in range(p):
            g[j] += y[j] * (v[j] - yv) / tau
    for j in range(p):
        g[j] /= batch


@kernel(inline="always")
def wrong_gs_lanes_reversed_sum(fp, objp, opts, aux, t, rows, work, g):
    """gumbel-softmax's lanes (``pathwise_lanes`` with the categorical's path) with the
    softmax denominator summed from the last class down: the same numbers but for the last
    bits, which the lanes' bit-for-bit check must catch."""
    y, h, v, s, q = work
    tau, k = opts[TAU], t.shape[0]
    for r in range(rows):
        q[0, r] = fp[0] + t[0, r]
    for j in range(1, k):
        for r in range(rows):
            q[0, r] = max(q[0, r], fp[j] + t[j, r])
    for j in range(k):
        for r in range(rows):
            y[j, r] = fastmath.exp((fp[j] + t[j, r] - q[0, r]) / tau)
    for r in range(rows):
        q[2, r] = 0.0
    for j in range(k - 1, -1, -1):
        for r in range(rows):
            q[2, r] += y[j, r]
    for j in range(k):
        for r in range(rows):
            y[j, r] /= q[2, r]
    obj(y, objp, v, q[3], rows)
    for j in range(g.shape[0]):
        for r in range(rows):
            g[j, r] = 0.0
    vjp(fp, tau, t, y, v, g, q, rows)


def _wrong(name, kern, options=("tau",), lanes=None):
    return Estimator(
        name,
        "deliberately wrong",
        "",
        kern,
        requires="relax",
        unbiased_for="none",
        options=options,
        lanes=lanes,
    )


WRONG_ST = _wrong("wrong-st-no-temperature", wrong_st_no_temperature)
WRONG_REINMAX = _wrong("wrong-reinmax-pi", wrong_reinmax_pi)
WRONG_RAO = _wrong("wrong-rao-unconditional", wrong_rao_unconditional)
# gradvar's own one-sample kernel (so that its blocks run on lanes) with wrong lanes
WRONG_GS_LANES = _wrong(
    "wrong-gs-lanes", ESTIMATORS["gumbel-softmax"].kernel, lanes=wrong_gs_lanes_reversed_sum
)
