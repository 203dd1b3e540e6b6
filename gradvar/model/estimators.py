"""Gradient estimators: one kernel each, one shared signature.

``kernel(fp, objp, opts, aux, key, counter0, batch, work, g)``
writes into ``g`` one gradient estimate, the average over ``batch`` samples whose noise
counters are ``counter0 .. counter0 + batch - 1``.  ``work`` is scratch space whose rows are
named in :mod:`gradvar.kernels.layout`; ``opts[TAU]`` is the temperature (the options of
:mod:`gradvar.model.options`); ``aux`` carries what the engine prepares per cell: the
baseline for ``sf-baseline`` and the exact gradient for ``exact``.  Adding an estimator is
one decorated function here.

The names ``noise``, ``score``, ``path``, ``vjp`` (the family's kernels, see
:class:`gradvar.model.registry.Family`) and ``obj`` (the objective) are bound per
(family, objective) combination by :func:`gradvar.kernels.jit.rebind`; Numba then compiles
direct calls, which it can inline and cache.
"""

from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import F_LANE, STATE, H, S, V, X
from gradvar.model.options import TAU
from gradvar.model.registry import LEAVE_ONE_OUT, estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine


@kernel(inline="always")
def sf_lanes(fp, objp, opts, aux, t, rows, work, g):
    """``sf`` at batch 1 on a block of lanes: g = f(x) grad log p(x) per lane."""
    x, h, v, s, q = work
    score(fp, t, x, s, q, rows)
    obj(x, objp, v, q[F_LANE], rows)
    for j in range(g.shape[0]):
        for r in range(rows):
            g[j, r] = 0.0 + q[F_LANE, r] * s[j, r]


@estimator(
    "sf",
    "score function / REINFORCE: f(z) grad log p(z)",
    "f(x) * dlogp(x)",
    requires="score",
    lanes=sf_lanes,
)
@kernel
def sf(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/M) sum_m f(x_m) grad_theta log p(x_m); unbiased (Williams 1992)."""
    x, st, v, s = work[X], work[STATE], work[V], work[S]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += f * s[j]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel(inline="always")
def sf_baseline_lanes(fp, objp, opts, aux, t, rows, work, g):
    """``sf-baseline`` at batch 1 on a block of lanes: g = (f(x) - b) grad log p(x), b_j =
    aux[1 + j]; leave-one-out (which needs batch >= 2) as ``sf_baseline`` computes it at
    batch 1: b = (f - f) / 0, NaN."""
    x, h, v, s, q = work
    score(fp, t, x, s, q, rows)
    obj(x, objp, v, q[F_LANE], rows)
    loo = aux[0] == LEAVE_ONE_OUT
    for j in range(g.shape[0]):
        for r in range(rows):
            f = q[F_LANE, r]
            c = f - ((0.0 + f) - f) / 0.0 if loo else f - aux[1 + j]
            g[j, r] = 0.0 + c * s[j, r]


@estimator(
    "sf-baseline",
    "score function with a baseline: (f(z) - b) grad log p(z)",
    "(f(x) - b) * dlogp(x)",
    requires="score",
    options=("baseline",),
    lanes=sf_baseline_lanes,
)
@kernel
def sf_baseline(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/M) sum_m (f(x_m) - b_m) grad log p(x_m); unbiased when b_m is independent of x_m.

    aux[0] == FIXED: b_j = aux[1 + j] (``mean``, ``optimal``: see gradvar.model.baselines).
    aux[0] == LEAVE_ONE_OUT: b_m = (sum_{m' != m} f(x_m')) / (M - 1) (Kool et al. 2019).
    """
    x, st, v, s = work[X], work[STATE], work[V], work[S]
    g[:] = 0.0
    if aux[0] == LEAVE_ONE_OUT:
        total = 0.0
        for m in range(batch):
            noise(fp, key, counter0 + m, st)
            score(fp, st, x, s)
            total += obj(x, objp, v)
        for m in range(batch):  # the noise is a function of the counter: redraw it
            noise(fp, key, counter0 + m, st)
            score(fp, st, x, s)
            f = obj(x, objp, v)
            c = f - (total - f) / (batch - 1)
            for j in range(g.shape[0]):
                g[j] += c * s[j]
    else:
        for m in range(batch):
            noise(fp, key, counter0 + m, st)
            score(fp, st, x, s)
            f = obj(x, objp, v)
            for j in range(g.shape[0]):
                g[j] += (f - aux[1 + j]) * s[j]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel(inline="always")
def pathwise_lanes(fp, objp, opts, aux, t, rows, work, g):
    """``pathwise`` at batch 1 on a block of lanes: g = (dy/dtheta)^T grad f(y) per lane."""
    x, h, v, s, q = work
    tau = opts[TAU]
    path(fp, tau, t, x, h, q, rows)
    obj(x, objp, v, q[F_LANE], rows)
    for j in range(g.shape[0]):
        for r in range(rows):
            g[j, r] = 0.0
    vjp(fp, tau, t, x, v, g, q, rows)


@estimator(
    "gumbel-softmax",
    "Gumbel-Softmax / Concrete: pathwise gradient of f(softmax((o+G)/tau))",
    "(1/tau) y*(grad f(y) - y.grad f(y))",
    requires="relax",
    unbiased_for="relaxed",
    options=("tau",),
    lanes=pathwise_lanes,
)
@estimator(
    "reparam",
    "reparameterization / pathwise: f'(g(eps)) dg/dtheta",
    "f'(z) * dz/dtheta",
    requires="reparam",
    lanes=pathwise_lanes,
)
@kernel
def pathwise(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/M) sum_m (dy/dtheta)^T grad f(y_m), y the reparameterized (or relaxed) sample.

    Normal: y = mu + sigma eps, unbiased (Kingma & Welling 2014).  Discrete families:
    y = softmax((o + G) / tau), unbiased for the relaxed objective E[f(y)] only
    (Jang et al. 2017; Maddison et al. 2017).
    """
    y, h, st, v = work[X], work[H], work[STATE], work[V]
    tau = opts[TAU]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        path(fp, tau, st, y, h)
        obj(y, objp, v)
        vjp(fp, tau, st, y, v, g)
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel(inline="always")
def st_gumbel_lanes(fp, objp, opts, aux, t, rows, work, g):
    """``st-gumbel`` at batch 1 on a block of lanes: g = (dy/dtheta)^T grad f(h) per lane."""
    x, h, v, s, q = work
    tau = opts[TAU]
    path(fp, tau, t, x, h, q, rows)
    obj(h, objp, v, q[F_LANE], rows)
    for j in range(g.shape[0]):
        for r in range(rows):
            g[j, r] = 0.0
    vjp(fp, tau, t, x, v, g, q, rows)


@estimator(
    "st-gumbel",
    "straight-through Gumbel: forward one-hot h, backward through soft y",
    "(1/tau) y*(grad f(h) - y.grad f(h))",
    requires="relax",
    unbiased_for="none",
    options=("tau",),
    lanes=st_gumbel_lanes,
)
@kernel
def st_gumbel(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = (1/M) sum_m (dy/dtheta)^T grad f(h_m), h = onehot(argmax(o + G)); biased
    (Bengio et al. 2013; Jang et al. 2017)."""
    y, h, st, v = work[X], work[H], work[STATE], work[V]
    tau = opts[TAU]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        path(fp, tau, st, y, h)
        obj(h, objp, v)
        vjp(fp, tau, st, y, v, g)
    for j in range(g.shape[0]):
        g[j] /= batch


@estimator(
    "exact",
    "the exact gradient (closed form, quadrature or enumeration), variance 0",
    "grad E[f]",
    deterministic=True,
    f_evals=0,
)
@kernel
def exact(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g = the exact gradient, prepared by the engine in aux."""
    for j in range(g.shape[0]):
        g[j] = aux[j]
