"""Deliberately wrong estimators, and objectives that exist only for tests.

Each wrong estimator is the score-function kernel of ``gradvar/estimators.py`` with one
plausible bug; the tests run it through the engine exactly like a registered estimator and
assert that the statistical check which accepts the right estimator rejects it.  They are
:class:`gradvar.model.registry.Estimator` objects built here and never registered, so the CLI,
``gradvar list`` and the generic tests do not see them.

The names ``noise``, ``score``, ``obj`` are bound per (family, objective) by the engine, as for
the real estimators.  Kernel names are unique (the engine names its generated modules after
them).
"""

import math

from gradvar.kernels.jit import kernel
from gradvar.model.registry import Estimator, Objective, Param

noise = score = path = vjp = obj = None  # bound per combination by the engine


@kernel
def wrong_sf_sigma_score(fp, objp, opts, aux, key, counter0, batch, work, g):
    """Normal only: the score multiplied by sigma (d log p / d mu written eps, not eps / sigma).
    Invisible at sigma = 1, so checks use sigma != 1."""
    x, st, v, s = work[0], work[2], work[3], work[4]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += f * s[j] * fp[1]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel
def wrong_sf_same_noise(fp, objp, opts, aux, key, counter0, batch, work, g):
    """Every sample of the batch drawn at counter0 (a counter bug): unbiased, but averaging M
    copies of one sample does not divide the variance by M."""
    x, st, v, s = work[0], work[2], work[3], work[4]
    g[:] = 0.0
    for _ in range(batch):
        noise(fp, key, counter0, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += f * s[j]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel
def wrong_sf_self_baseline(fp, objp, opts, aux, key, counter0, batch, work, g):
    """Baseline = mean of f over the batch *including* the sample it corrects: biased,
    E = (M - 1) / M times the gradient (REFERENCE section 2: never do this)."""
    x, st, v, s = work[0], work[2], work[3], work[4]
    g[:] = 0.0
    total = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        total += obj(x, objp, v)
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += (f - total / batch) * s[j]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel
def wrong_sf_uncentred_score(fp, objp, opts, aux, key, counter0, batch, work, g):
    """Categorical: the score e_i without its - softmax(o) term (x is the one-hot sample)."""
    x, st, v, s = work[0], work[2], work[3], work[4]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += f * x[j]
    for j in range(g.shape[0]):
        g[j] /= batch


@kernel
def wrong_sf_logit_score(fp, objp, opts, aux, key, counter0, batch, work, g):
    """Bernoulli: the score b - phi (the logit) instead of b - sigmoid(phi)."""
    x, st, v, s = work[0], work[2], work[3], work[4]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        g[0] += f * (x[0] - fp[0])
    g[0] /= batch


def _wrong(kern, summary):
    return Estimator(
        name=kern.__name__.replace("_", "-"),
        summary=summary,
        formula="(deliberately wrong)",
        kernel=kern,
        requires="score",
    )


SF_SIGMA_SCORE = _wrong(wrong_sf_sigma_score, "score missing the 1/sigma")
SF_SAME_NOISE = _wrong(wrong_sf_same_noise, "one noise draw reused for the whole batch")
SF_SELF_BASELINE = _wrong(wrong_sf_self_baseline, "baseline from the sample it corrects")
SF_UNCENTRED_SCORE = _wrong(wrong_sf_uncentred_score, "categorical score missing - softmax")
SF_LOGIT_SCORE = _wrong(wrong_sf_logit_score, "bernoulli score b - logit")


# --- test objectives ------------------------------------------------------------------------
@kernel
def normal_inf_above(x, objp, grad):
    """f = z for z <= c, +inf above (and f' = 1, +inf): makes non-finite estimates on purpose."""
    if x[0] > objp[0]:
        grad[0] = math.inf
        return math.inf
    grad[0] = 1.0
    return x[0]


INF_ABOVE = Objective(
    "normal",
    "inf-above",
    (Param("c", 1.5),),
    "z below c, inf above",
    "z if z <= c else inf",
    normal_inf_above,
)
