"""Straight-through estimators of the categorical (and of the Bernoulli as two classes).

Conventions (REFERENCE section 7): logits o, K classes, pi = softmax(o), D = onehot of the
family's Gumbel-Max sample (the same noise as ``sf`` and ``st-gumbel``: common random
numbers), A(x) = diag(x) - x x^T and J(s) = A(s) / tau, s = softmax(o / tau).  The Bernoulli
is two classes with logits (phi, 0), class 0 being b = 1; its one coordinate ``logit`` is the
first component of the two-logit gradient, and df/dD = (f'(b), 0).  The kernels tell the two
views apart by the number of coordinates (one: the Bernoulli; K >= 2: the categorical, whose
``fp`` is ``[o..., pi...]``).

``st`` and ``reinmax`` are functions of D alone: their exact moments are sums over the K
classes (:func:`enumerated`).  ``gumbel-rao`` draws its conditional Gumbels from a stream of
its own; its exact moments are conditional moments given the class
(:func:`gradvar.truth.gumbel_rao_moments`).
"""

import numpy as np

from gradvar.kernels import fastmath
from gradvar.kernels.fastmath import sigmoid
from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import STATE, WORK_ROWS, H, S, V, X
from gradvar.kernels.rng import stream_id, substream, uniform
from gradvar.model.options import RAO_SAMPLES, TAU
from gradvar.model.registry import estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine

RAO_STREAM = stream_id("gumbel-rao")
RAO_ROWS = 32  # gumbel-rao's scratch rows (of the cell's width): a block of draws, denominators
RAO_BLOCK = 2048  # at most this many draws per block (with the denominators 32 KB: L1 cache)


@kernel
def _class_of(x, p):
    """The sampled class: argmax of the one-hot x (categorical), 0 iff b = 1 (Bernoulli)."""
    if p == 1:
        return 0 if x[0] > 0.5 else 1
    for j in range(p):
        if x[j] > 0.5:
            return j
    return 0


@kernel
def _softmax_gaps(d, tau, y, p):
    """y = softmax(d / tau) for gaps d <= 0 (one of them 0: no overflow); the exp loop
    vectorises (no reduction in it)."""
    for j in range(p):
        y[j] = fastmath.exp(d[j] / tau)
    total = 0.0
    for j in range(p):
        total += y[j]
    for j in range(p):
        y[j] /= total


@kernel
def _add_jt(y, v, tau, w, g, p):
    """g += w J(y)^T v = w y * (v - y.v) / tau (categorical)."""
    yv = 0.0
    for j in range(p):
        yv += y[j] * v[j]
    for j in range(p):
        g[j] += w * y[j] * (v[j] - yv) / tau


@kernel
def _finish(g, batch):
    for j in range(g.shape[0]):
        g[j] /= batch


@estimator(
    "st",
    "plain straight-through: J(softmax(o/tau))^T grad f(D), D the hard sample",
    "(1/tau) (diag(s) - s s^T) grad f(D), s = softmax(o/tau)",
    requires="softmax",
    unbiased_for="none",
    options=("tau",),
    exact=lambda cell, baseline: enumerated(cell, "st"),
)
@kernel
def st(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = J(s)^T grad f(D), s = softmax(o / tau), J(s) = (diag(s) - s s^T) / tau; biased
    (Bengio et al. 2013).  Bernoulli: g = s0 s1 f'(b) / tau, s0 = sigmoid(phi / tau)."""
    x, st_, v, s, y = work[X], work[STATE], work[V], work[S], work[H]
    tau, p = opts[TAU], g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st_)
        score(fp, st_, x, s)
        obj(x, objp, v)
        if p == 1:
            g[0] += sigmoid(fp[0] / tau) * sigmoid(-fp[0] / tau) * v[0] / tau
        else:
            top = fp[0]
            for j in range(1, p):
                top = max(top, fp[j])
            for j in range(p):
                y[j] = fp[j] - top
            _softmax_gaps(y, tau, y, p)
            _add_jt(y, v, tau, 1.0, g, p)
    _finish(g, batch)


@estimator(
    "reinmax",
    "ReinMax: second-order straight-through, [2 A(pi1) - A(pi)/2] grad f(D)",
    "[2 A((D + s)/2) - A(pi)/2] grad f(D), A(x) = diag(x) - x x^T, s = softmax(o/tau)",
    requires="softmax",
    unbiased_for="none",
    options=("tau",),
    exact=lambda cell, baseline: enumerated(cell, "reinmax"),
)
@kernel
def reinmax(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = [2 A(pi1) - A(pi) / 2] grad f(D), pi1 = (D + softmax(o / tau)) / 2,
    A(x) = diag(x) - x x^T (Liu et al. 2023).  Unbiased at tau = 1 for quadratic f.
    Bernoulli: g = [2 q (1 - q) - p (1 - p) / 2] f'(b), q = (b + sigmoid(phi / tau)) / 2."""
    x, st_, v, s, y = work[X], work[STATE], work[V], work[S], work[H]
    tau, p = opts[TAU], g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st_)
        score(fp, st_, x, s)
        obj(x, objp, v)
        if p == 1:
            b = x[0]
            q0 = 0.5 * (b + sigmoid(fp[0] / tau))
            q1 = 0.5 * (1.0 - b + sigmoid(-fp[0] / tau))  # 1 - q0 without cancellation
            g[0] += (2.0 * q0 * q1 - 0.5 * sigmoid(fp[0]) * sigmoid(-fp[0])) * v[0]
        else:
            top = fp[0]
            for j in range(1, p):
                top = max(top, fp[j])
            for j in range(p):
                y[j] = fp[j] - top
            _softmax_gaps(y, tau, y, p)
            for j in range(p):
                y[j] = 0.5 * (x[j] + y[j])
            _add_jt(y, v, 1.0, 2.0, g, p)
            pv = 0.0
            for j in range(p):
                pv += fp[p + j] * v[j]
            for j in range(p):
                g[j] -= 0.5 * fp[p + j] * (v[j] - pv)
    _finish(g, batch)


@estimator(
    "gumbel-rao",
    "Gumbel-Rao: straight-through Gumbel averaged over K' Gumbels drawn given the class",
    "(1/K') sum_k J(softmax(z_k/tau))^T grad f(D), z_k ~ log pi + G | argmax = D",
    requires="softmax",
    unbiased_for="none",
    options=("tau", "rao_samples"),
    stream="gumbel-rao",
    f_evals=1,  # f and its gradient once at D; the K' conditional draws cost softmaxes
    exact=lambda cell, baseline: _gumbel_rao_exact(cell),
    scratch_rows=RAO_ROWS,
)
@kernel
def gumbel_rao(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/K') sum_k J(y_k)^T grad f(D), y_k = softmax(z_k / tau) (Paulus et al. 2021).

    z_k: K' draws of log pi + G given argmax = i, the sampled class (Maddison et al. 2014):
    with v ~ U(0, 1)^K and E = -log v, z_i = -log E_i, z_j = -log(E_j / pi_j + E_i); the
    kernel uses the gaps z_j - z_i = -log1p(E_j / (pi_j E_i)).  The uniforms of sample n come
    from the estimator's own stream at counters n W + k K + j, W = K' K.  The softmax of
    the gaps is e_j / T, e_j = exp(-log1p(E_j / (pi_j E_i)) / tau), e_i = 1, T = sum e, and
    J(e / T)^T v = e (v - e.v / T) / (T tau) without normalising e first.

    The draws k run in blocks of rows, in flat loops over a whole block each (packed by
    LLVM): E, the denominators pi_j E_i and the ratios, log1p, exp(-(.) / tau) (the inline
    math of :mod:`gradvar.kernels.fastmath`; every class, i too, whose value is then replaced
    by 1); then the sums row by row.  A block is at most ``RAO_BLOCK`` numbers (one row of K
    if K is larger) and fits in half the scratch rows (``RAO_ROWS`` rows of the cell's width:
    the block, its denominators).
    Each number goes through the same operations as in one loop per row, and the sums run in
    the same order, so the estimates do not depend on the block size, bit for bit.
    """
    x, st_, v, s = work[X], work[STATE], work[V], work[S]
    tau, p = opts[TAU], g.shape[0]
    rao = int(opts[RAO_SAMPLES])
    k = 2 if p == 1 else p
    width = rao * k
    own = substream(key, RAO_STREAM)
    inv_tau = 1.0 / tau
    half = (work.shape[0] - WORK_ROWS) // 2 * work.shape[1]  # RAO_ROWS // 2 rows each
    if half < k:  # a caller without the scratch rows (Estimator.scratch_rows): NaN, counted
        g[:] = np.nan
        return
    flat = work.reshape(work.size)[WORK_ROWS * work.shape[1] :]  # the scratch rows
    e, d = flat[:half], flat[half:]
    rows = max(1, min(half, RAO_BLOCK) // k)  # rows of K draws per block
    g[:] = 0.0
    for m in range(batch):
        n = counter0 + m
        noise(fp, key, n, st_)
        score(fp, st_, x, s)
        obj(x, objp, v)
        i = _class_of(x, p)
        base = n * width
        if p == 1:  # a = z0 - z1, y0 = sigmoid(a / tau)
            for r in range(rao):
                ei = -fastmath.log_normal(uniform(own, base + r * k + i))
                ej = -fastmath.log_normal(uniform(own, base + r * k + 1 - i))
                if i == 0:
                    a = fastmath.log1p(ej / (sigmoid(-fp[0]) * ei))
                else:
                    a = -fastmath.log1p(ej / (fp[1] * ei))
                g[0] += sigmoid(a / tau) * sigmoid(-a / tau) * v[0] / (tau * rao)
            continue
        for r0 in range(0, rao, rows):
            size = min(rows, rao - r0) * k
            first = base + r0 * k
            for q in range(size):  # E of the block's rows, flat
                e[q] = -fastmath.log_normal(uniform(own, first + q))
            for o in range(0, size, k):  # pi_j E_i, E_i of the same row
                ei = e[o + i]
                for j in range(p):
                    d[o + j] = fp[p + j] * ei
            for q in range(size):
                e[q] = e[q] / d[q]
            for q in range(size):
                e[q] = fastmath.log1p(e[q])
            for q in range(size):  # exp((z_j - z_i) / tau)
                e[q] = fastmath.exp(-inv_tau * e[q])
            for o in range(0, size, k):
                e[o + i] = 1.0
                total = 0.0  # unnormalised: J(e / T)^T v = e (v - e.v / T) / (T tau)
                yv = 0.0
                for j in range(p):
                    total += e[o + j]
                    yv += e[o + j] * v[j]
                yv /= total
                w = 1.0 / (total * tau * rao)
                for j in range(p):
                    g[j] += w * e[o + j] * (v[j] - yv)
    _finish(g, batch)


def enumerated(cell, name):
    """Exact (mean, variance) of an estimator that is a function of D alone: the sum over the
    family's outcomes (one per class) of its compiled kernel's value, weighted by pi."""
    from gradvar import truth
    from gradvar.model import ESTIMATORS

    fam = cell.family
    states, weights = fam.outcomes(cell.family_values)
    g = truth.estimates_on(cell, ESTIMATORS[name], states, np.zeros(1 + len(cell.coords)))
    # shifted by the first class: a constant estimate (st on a linear f) gets variance 0 exactly
    mean = g[0] + weights @ (g - g[0])
    var = np.maximum(weights @ (g - mean) ** 2, 0.0) / cell.batch
    return mean, var, ""


def _gumbel_rao_exact(cell):
    from gradvar import truth

    return truth.gumbel_rao_moments(cell)
