"""Distribution families: noise, score, pathwise/relaxed samples and their Jacobians.

All kernels read ``fp``, the family's parameter array made by ``prepare``: normal
``[mu, sigma, ziggurat tables..., 1 / sigma]``; categorical ``[logits...,
softmax(logits)...]``; bernoulli ``[phi, sigmoid(phi), sigmoid(-phi)]``.  Every estimator in a
cell sees the same noise because the noise of sample c is a pure function of (key, c).
"""

import functools
import math

import numpy as np

from gradvar.kernels import fastmath
from gradvar.kernels.fastmath import sigmoid
from gradvar.kernels.jit import kernel
from gradvar.kernels.rng import ZIGGURAT, gumbel, logistic, normal
from gradvar.model.registry import Family, Param, register_family

# --- normal N(mu, sigma^2): z = mu + sigma * eps -------------------------------------
# fp = [mu, sigma, ziggurat tables (rng.ZIGGURAT)..., 1 / sigma]
_RSIGMA = 2 + len(ZIGGURAT)


@kernel
def normal_noise(fp, key, counter, state):
    """eps ~ N(0, 1) (fp[2:] holds the ziggurat tables)."""
    state[0] = normal(key, counter, fp, 2)


@kernel
def normal_score(fp, state, x, s):
    """z = mu + sigma eps; d/dmu log p = eps / sigma, d/dsigma log p = (eps^2 - 1) / sigma,
    each as a product with 1 / sigma (prepared once): a division per coordinate would cost
    the estimate about 15% (the divider is the busiest unit of the sf loop)."""
    e = state[0]
    x[0] = fp[0] + fp[1] * e
    s[0] = e * fp[_RSIGMA]
    s[1] = (e * e - 1.0) * fp[_RSIGMA]


@kernel
def normal_path(fp, tau, state, y, h):
    """z = mu + sigma eps (the reparameterized sample; soft and hard coincide)."""
    z = fp[0] + fp[1] * state[0]
    y[0] = z
    h[0] = z


@kernel
def normal_vjp(fp, tau, state, y, v, g):
    """dz/dmu = 1, dz/dsigma = eps: g += (v, v eps)."""
    g[0] += v[0]
    g[1] += v[0] * state[0]


def _normal_prepare(values):
    mu, sigma = float(values["mu"]), float(values["sigma"])
    return np.concatenate([[mu, sigma], ZIGGURAT, [1.0 / sigma]])


@functools.cache
def _hermite(nodes):
    """Gauss-Hermite nodes and weights for E over N(0, 1) (weights normalised to sum 1)."""
    with np.errstate(all="ignore"):
        x, w = np.polynomial.hermite_e.hermegauss(nodes)
    x.setflags(write=False)
    w = w / math.sqrt(2.0 * math.pi)
    w.setflags(write=False)
    return x, w


def _normal_quadrature(values, nodes):
    """Gauss-Hermite states eps (one per node) and weights."""
    x, w = _hermite(nodes)
    return x[:, None], w


register_family(
    Family(
        name="normal",
        params=(
            Param("mu", 1.0, help="mean"),
            Param("sigma", 1.0, positive=True, help="standard deviation"),
        ),
        capabilities=frozenset({"score", "reparam", "weak"}),  # weak: measure-valued derivative
        summary="N(mu, sigma^2), gradient w.r.t. (mu, sigma)",
        prepare=_normal_prepare,
        dim=lambda values: 1,
        coords=lambda values: ["mu", "sigma"],
        noise=normal_noise,
        score=normal_score,
        path=normal_path,
        vjp=normal_vjp,
        state_size=lambda dim: 1,
        default_objective="quadratic",
        default_estimators=("sf", "sf-baseline", "reparam"),
        variable="z",
        quadrature=_normal_quadrature,
        quadrature_nodes=(40, 80, 160, 320),  # hermegauss overflows beyond about 400 nodes
        injection_exact=frozenset({"score", "reparam"}),
        noise_pdf=lambda e: math.exp(-0.5 * e * e) / math.sqrt(2.0 * math.pi),
    )
)


# --- categorical with logits o: Gumbel-Max sampling ------------------------------------
@kernel
def categorical_variate(fp, key, index):
    """A standard Gumbel."""
    return gumbel(key, index)


@kernel
def categorical_noise(fp, key, counter, state):
    """G_j ~ Gumbel(0, 1) for j < K, variates K c + j."""
    k = state.shape[0]
    base = counter * k
    for j in range(k):
        state[j] = categorical_variate(fp, key, base + j)


@kernel
def _argmax_perturbed(fp, state, k):
    best = 0
    top = fp[0] + state[0]
    for j in range(1, k):
        a = fp[j] + state[j]
        if a > top:
            top = a
            best = j
    return best


@kernel
def categorical_score(fp, state, x, s):
    """i = argmax(o + G) (Gumbel-Max), x = e_i, score = e_i - softmax(o)."""
    k = state.shape[0]
    i = _argmax_perturbed(fp, state, k)
    for j in range(k):
        x[j] = 0.0
        s[j] = -fp[k + j]
    x[i] = 1.0
    s[i] += 1.0


@kernel
def categorical_path(fp, tau, state, y, h):
    """y = softmax((o + G) / tau), computed stably (exponents shifted by max(o + G) <= 0);
    h = onehot(argmax(o + G)).  The exp loop has no reduction in it, so it vectorises."""
    k = state.shape[0]
    i = _argmax_perturbed(fp, state, k)
    top = fp[i] + state[i]
    for j in range(k):
        y[j] = fastmath.exp((fp[j] + state[j] - top) / tau)
        h[j] = 0.0
    total = 0.0
    for j in range(k):
        total += y[j]
    for j in range(k):
        y[j] /= total
    h[i] = 1.0


@kernel
def categorical_vjp(fp, tau, state, y, v, g):
    """dy/do = (diag(y) - y y^T) / tau: g += y * (v - y.v) / tau."""
    k = state.shape[0]
    yv = 0.0
    for j in range(k):
        yv += y[j] * v[j]
    for j in range(k):
        g[j] += y[j] * (v[j] - yv) / tau


# Lane forms (see Family.score_lanes): column r of every (width, R) matrix is one sample, and
# each lane runs the operations of the kernel above in the same order, so a block of samples
# gives the same bits as the samples one by one; the loops over the lanes vectorise.
@kernel(inline="always")
def _argmax_lanes(fp, t, q, rows):
    """q[0] = max_j (o_j + G_j), q[1] = its first index j, per lane (``_argmax_perturbed``)."""
    k = t.shape[0]
    for r in range(rows):
        q[0, r] = fp[0] + t[0, r]
        q[1, r] = 0.0
    for j in range(1, k):
        for r in range(rows):
            a = fp[j] + t[j, r]
            up = a > q[0, r]
            q[0, r] = a if up else q[0, r]
            q[1, r] = float(j) if up else q[1, r]


@kernel(inline="always")
def categorical_score_lanes(fp, t, x, s, q, rows):
    """``categorical_score`` per lane: x = e_i, score = e_i - softmax(o)."""
    k = t.shape[0]
    _argmax_lanes(fp, t, q, rows)
    for j in range(k):
        for r in range(rows):
            hit = q[1, r] == j
            x[j, r] = 1.0 if hit else 0.0
            s[j, r] = -fp[k + j] + 1.0 if hit else -fp[k + j]


@kernel(inline="always")
def categorical_path_lanes(fp, tau, t, y, h, q, rows):
    """``categorical_path`` per lane: y = softmax((o + G) / tau), h = onehot(argmax)."""
    k = t.shape[0]
    _argmax_lanes(fp, t, q, rows)
    for j in range(k):
        for r in range(rows):
            y[j, r] = fastmath.exp((fp[j] + t[j, r] - q[0, r]) / tau)
            h[j, r] = 1.0 if q[1, r] == j else 0.0
    for r in range(rows):
        q[2, r] = 0.0
    for j in range(k):
        for r in range(rows):
            q[2, r] += y[j, r]
    for j in range(k):
        for r in range(rows):
            y[j, r] /= q[2, r]


@kernel(inline="always")
def categorical_vjp_lanes(fp, tau, t, y, v, g, q, rows):
    """``categorical_vjp`` per lane: g += y * (v - y.v) / tau."""
    k = t.shape[0]
    for r in range(rows):
        q[2, r] = 0.0
    for j in range(k):
        for r in range(rows):
            q[2, r] += y[j, r] * v[j, r]
    for j in range(k):
        for r in range(rows):
            g[j, r] += y[j, r] * (v[j, r] - q[2, r]) / tau


def softmax(logits):
    """Numerically stable softmax (NumPy); a gap beyond the largest double is -inf, whose
    exp is exactly 0."""
    with np.errstate(over="ignore"):
        z = np.exp(logits - np.max(logits))
    return z / z.sum()


def _categorical_outcomes(values):
    """One state per class j (G_j = 0, the others -inf: argmax(o + G) = j), with softmax(o)."""
    logits = np.asarray(values["logits"], dtype=float)
    k = len(logits)
    states = np.full((k, k), -np.inf)
    np.fill_diagonal(states, 0.0)
    return states, softmax(logits)


def _categorical_gradient(values, f):
    """grad_o E[f] = p * (F - p.F), F_j = f(e_j)."""
    p = softmax(np.asarray(values["logits"], dtype=float))
    return p * (f - p @ f)


def _categorical_two_class(values):
    """Two classes: argmax(o + G) = 0 iff o0 - o1 + (G0 - G1) > 0, and G0 - G1 ~ Logistic,
    so the state (L, 0) with L ~ Logistic(0, 1) has the law the estimates see."""
    o = np.asarray(values["logits"], dtype=float)
    if len(o) != 2:
        return None
    return (lambda L: np.array([L, 0.0])), float(o[1] - o[0])


def _categorical_prepare(values):
    logits = np.asarray(values["logits"], dtype=float)
    return np.concatenate([logits, softmax(logits)])


register_family(
    Family(
        name="categorical",
        params=(Param("logits", (2.0, 0.5, 0.1), vector=True, help="logits o, one per class"),),
        capabilities=frozenset({"score", "relax", "softmax"}),  # softmax: one K-class softmax
        summary="Categorical(softmax(logits)) by Gumbel-Max, gradient w.r.t. every logit",
        prepare=_categorical_prepare,
        dim=lambda values: len(np.atleast_1d(values["logits"])),
        coords=lambda values: [f"logits[{j}]" for j in range(len(np.atleast_1d(values["logits"])))],
        noise=categorical_noise,
        variate=categorical_variate,
        score=categorical_score,
        path=categorical_path,
        vjp=categorical_vjp,
        score_lanes=categorical_score_lanes,
        path_lanes=categorical_path_lanes,
        vjp_lanes=categorical_vjp_lanes,
        state_size=lambda dim: dim,
        default_objective="squared",
        default_estimators=("sf", "sf-baseline", "gumbel-softmax", "st-gumbel"),
        variable="y",
        min_dim=2,
        outcomes=_categorical_outcomes,
        injection_exact=frozenset({"score"}),
        exact_gradient=_categorical_gradient,
        two_class=_categorical_two_class,
    )
)


# --- bernoulli with logit phi: b = 1[phi + L > 0], L ~ Logistic ------------------------
@kernel
def logistic_variate(fp, key, index):
    """L ~ Logistic(0, 1), the difference of two Gumbels (bernoulli, multibernoulli)."""
    return logistic(key, index)


@kernel
def bernoulli_noise(fp, key, counter, state):
    """L of sample c: variate c."""
    state[0] = logistic_variate(fp, key, counter)


@kernel
def bernoulli_score(fp, state, x, s):
    """b = 1[phi + L > 0] ~ Bernoulli(sigmoid(phi)); d/dphi log p(b) = b - p, taken as
    q = 1 - p (fp[2], computed without cancellation) when b = 1."""
    b = 1.0 if fp[0] + state[0] > 0.0 else 0.0
    x[0] = b
    s[0] = fp[2] if b == 1.0 else -fp[1]


@kernel
def bernoulli_path(fp, tau, state, y, h):
    """Binary Concrete: y = sigmoid((phi + L) / tau); h = 1[phi + L > 0]."""
    a = fp[0] + state[0]
    y[0] = sigmoid(a / tau)
    h[0] = 1.0 if a > 0.0 else 0.0


@kernel
def bernoulli_vjp(fp, tau, state, y, v, g):
    """dy/dphi = y (1 - y) / tau, with 1 - y computed as sigmoid(-a / tau) for accuracy."""
    a = (fp[0] + state[0]) / tau
    g[0] += v[0] * sigmoid(a) * sigmoid(-a) / tau


def _expit(phi):
    """sigmoid(phi) with full relative precision for either sign (no 1 - p cancellation);
    scipy's, as the multibernoulli family uses, so one bit equals the Bernoulli exactly."""
    from scipy.special import expit

    return float(expit(phi))


def _bernoulli_prepare(values):
    """fp = [phi, p, 1 - p], both probabilities to full relative precision."""
    phi = float(values["logit"])
    return np.array([phi, _expit(phi), _expit(-phi)])


def _bernoulli_outcomes(values):
    """b = 0 (L = -inf) with 1 - p, b = 1 (L = +inf) with p."""
    phi = float(values["logit"])
    return np.array([[-np.inf], [np.inf]]), np.array([_expit(-phi), _expit(phi)])


def _bernoulli_gradient(values, f):
    """dE[f]/dphi = (f(1) - f(0)) p (1 - p)."""
    _, probs = _bernoulli_outcomes(values)
    return np.array([(f[1] - f[0]) * probs[0] * probs[1]])


def _bernoulli_two_class(values):
    """The noise is one logistic variate L; b switches at L = -phi."""
    return (lambda L: np.array([L])), -float(values["logit"])


register_family(
    Family(
        name="bernoulli",
        params=(Param("logit", 0.0, help="logit phi, p = sigmoid(phi)"),),
        capabilities=frozenset(
            {"score", "relax", "bits", "softmax", "one-bit"}
        ),  # softmax: 2 classes
        summary="Bernoulli(sigmoid(logit)) by a logistic threshold, gradient w.r.t. the logit",
        prepare=_bernoulli_prepare,
        dim=lambda values: 1,
        coords=lambda values: ["logit"],
        noise=bernoulli_noise,
        variate=logistic_variate,
        score=bernoulli_score,
        path=bernoulli_path,
        vjp=bernoulli_vjp,
        state_size=lambda dim: 1,
        default_objective="squared",
        default_estimators=("sf", "sf-baseline", "gumbel-softmax", "st-gumbel"),
        variable="b",
        outcomes=_bernoulli_outcomes,
        injection_exact=frozenset({"score"}),
        exact_gradient=_bernoulli_gradient,
        two_class=_bernoulli_two_class,
    )
)


# --- multibernoulli with logits phi_i: D independent bits b_i = 1[phi_i + L_i > 0] ---------
MULTIBERNOULLI_ENUM_DIM = 16  # exact moments by enumeration of the 2^D outcomes up to this D


@kernel
def multibernoulli_noise(fp, key, counter, state):
    """L_i ~ Logistic(0, 1) for i < D, variates D c + i (u_i = sigmoid(L_i) ~ U(0, 1))."""
    d = state.shape[0]
    base = counter * d
    for i in range(d):
        state[i] = logistic_variate(fp, key, base + i)


@kernel
def multibernoulli_score(fp, state, x, s):
    """b_i = 1[phi_i + L_i > 0] ~ Bernoulli(p_i); d/dphi_i log p(b) = b_i - p_i, taken as
    q_i = 1 - p_i (fp[2D + i], without cancellation) when b_i = 1."""
    d = state.shape[0]
    for i in range(d):
        b = 1.0 if fp[i] + state[i] > 0.0 else 0.0
        x[i] = b
        s[i] = fp[2 * d + i] if b == 1.0 else -fp[d + i]


@kernel
def multibernoulli_path(fp, tau, state, y, h):
    """Independent binary Concretes: y_i = sigmoid((phi_i + L_i) / tau); h_i = b_i."""
    for i in range(state.shape[0]):
        a = fp[i] + state[i]
        y[i] = sigmoid(a / tau)
        h[i] = 1.0 if a > 0.0 else 0.0


@kernel
def multibernoulli_vjp(fp, tau, state, y, v, g):
    """dy_i/dphi_i = y_i (1 - y_i) / tau (diagonal), 1 - y_i as sigmoid(-a_i / tau)."""
    for i in range(state.shape[0]):
        a = (fp[i] + state[i]) / tau
        g[i] += v[i] * sigmoid(a) * sigmoid(-a) / tau


def _multibernoulli_logits(values):
    return np.atleast_1d(np.asarray(values["logits"], dtype=float))


def _multibernoulli_prepare(values):
    from scipy.special import expit

    phi = _multibernoulli_logits(values)
    return np.concatenate([phi, expit(phi), expit(-phi)])


def bit_patterns(dim):
    """The 2^D bit vectors (rows), b_i = bit i of the row number."""
    return (np.arange(2**dim)[:, None] >> np.arange(dim)) & 1


def _multibernoulli_outcomes(values):
    """Every b in {0, 1}^D (L_i = +-inf) with prod_i p_i^b_i (1 - p_i)^(1 - b_i); None (not
    enumerated) beyond D = MULTIBERNOULLI_ENUM_DIM."""
    from scipy.special import log_expit

    phi = _multibernoulli_logits(values)
    if len(phi) > MULTIBERNOULLI_ENUM_DIM:
        return None
    bits = bit_patterns(len(phi))
    logw = np.where(bits == 1, log_expit(phi), log_expit(-phi)).sum(axis=1)
    return np.where(bits == 1, np.inf, -np.inf), np.exp(logw)


def _multibernoulli_gradient(values, f):
    """dE[f]/dphi_i = p_i (1 - p_i) (E[f | b_i = 1] - E[f | b_i = 0]), f at the outcomes."""
    from scipy.special import expit

    phi = _multibernoulli_logits(values)
    p, q = expit(phi), expit(-phi)
    _, w = _multibernoulli_outcomes(values)
    bits = bit_patterns(len(phi))
    on = (w * f) @ bits / p
    off = (w * f) @ (1 - bits) / q
    return p * q * (on - off)


def _multibernoulli_two_class(values):
    """One bit: the noise is one logistic variate, b switches at L = -phi; None for D > 1."""
    phi = _multibernoulli_logits(values)
    if len(phi) != 1:
        return None
    return (lambda L: np.array([L])), -float(phi[0])


register_family(
    Family(
        name="multibernoulli",
        params=(
            Param(
                "logits",
                (0.0,) * 10,
                vector=True,
                help="logits phi_i of the D independent bits, p_i = sigmoid(phi_i)",
            ),
        ),
        capabilities=frozenset({"score", "relax", "bits"}),
        summary="D independent Bernoulli(sigmoid(logits_i)) bits, gradient w.r.t. every logit",
        prepare=_multibernoulli_prepare,
        dim=lambda values: len(_multibernoulli_logits(values)),
        coords=lambda values: [f"logits[{i}]" for i in range(len(_multibernoulli_logits(values)))],
        noise=multibernoulli_noise,
        variate=logistic_variate,
        score=multibernoulli_score,
        path=multibernoulli_path,
        vjp=multibernoulli_vjp,
        state_size=lambda dim: dim,
        default_objective="squared",
        default_estimators=("sf", "sf-baseline", "arm", "disarm", "rebar", "gumbel-softmax"),
        variable="b",
        outcomes=_multibernoulli_outcomes,
        injection_exact=frozenset({"score"}),
        exact_gradient=_multibernoulli_gradient,
        two_class=_multibernoulli_two_class,
        enumeration_cap=2**MULTIBERNOULLI_ENUM_DIM,
    )
)
