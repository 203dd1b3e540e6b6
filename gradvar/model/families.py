"""Distribution families: noise, score, pathwise/relaxed samples and their Jacobians.

All kernels read ``fp``, the family's parameter array made by ``prepare``:
normal ``[mu, sigma, ziggurat tables...]``; categorical ``[logits..., softmax(logits)...]``;
bernoulli ``[phi, sigmoid(phi)]``.  Every estimator in a cell sees the same noise
because the noise of sample c is a pure function of (key, c).
"""

import math

import numpy as np

from gradvar.kernels.jit import kernel
from gradvar.kernels.rng import ZIGGURAT, gumbel, logistic, normal
from gradvar.model.registry import Family, Param, register_family


# --- normal N(mu, sigma^2): z = mu + sigma * eps -------------------------------------
@kernel
def normal_noise(fp, key, counter, state):
    """eps ~ N(0, 1) (fp[2:] holds the ziggurat tables)."""
    state[0] = normal(key, counter, fp[2:])


@kernel
def normal_score(fp, state, x, s):
    """z = mu + sigma eps; d/dmu log p = eps / sigma, d/dsigma log p = (eps^2 - 1) / sigma."""
    e = state[0]
    x[0] = fp[0] + fp[1] * e
    s[0] = e / fp[1]
    s[1] = (e * e - 1.0) / fp[1]


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
    return np.concatenate([[float(values["mu"]), float(values["sigma"])], ZIGGURAT])


register_family(
    Family(
        name="normal",
        params=(
            Param("mu", 1.0, help="mean"),
            Param("sigma", 1.0, positive=True, help="standard deviation"),
        ),
        capabilities=frozenset({"score", "reparam"}),
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
    )
)


# --- categorical with logits o: Gumbel-Max sampling ------------------------------------
@kernel
def categorical_noise(fp, key, counter, state):
    """G_j ~ Gumbel(0, 1) for j < K, from counters K c + j."""
    k = state.shape[0]
    base = counter * k
    for j in range(k):
        state[j] = gumbel(key, base + j)


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
    """y = softmax((o + G) / tau), computed stably; h = onehot(argmax(o + G))."""
    k = state.shape[0]
    i = _argmax_perturbed(fp, state, k)
    top = fp[i] + state[i]
    total = 0.0
    for j in range(k):
        e = math.exp((fp[j] + state[j] - top) / tau)
        y[j] = e
        total += e
        h[j] = 0.0
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


def softmax(logits):
    """Numerically stable softmax (NumPy)."""
    z = np.exp(logits - np.max(logits))
    return z / z.sum()


def _categorical_prepare(values):
    logits = np.asarray(values["logits"], dtype=float)
    return np.concatenate([logits, softmax(logits)])


register_family(
    Family(
        name="categorical",
        params=(Param("logits", (2.0, 0.5, 0.1), vector=True, help="logits o (one per class)"),),
        capabilities=frozenset({"score", "relax"}),
        summary="Categorical(softmax(logits)) by Gumbel-Max, gradient w.r.t. every logit",
        prepare=_categorical_prepare,
        dim=lambda values: len(np.atleast_1d(values["logits"])),
        coords=lambda values: [f"logits[{j}]" for j in range(len(np.atleast_1d(values["logits"])))],
        noise=categorical_noise,
        score=categorical_score,
        path=categorical_path,
        vjp=categorical_vjp,
        state_size=lambda dim: dim,
        default_objective="squared",
    )
)


# --- bernoulli with logit phi: b = 1[phi + L > 0], L ~ Logistic ------------------------
@kernel
def bernoulli_noise(fp, key, counter, state):
    """L ~ Logistic(0, 1), the difference of two Gumbels."""
    state[0] = logistic(key, counter)


@kernel
def bernoulli_score(fp, state, x, s):
    """b = 1[phi + L > 0] ~ Bernoulli(sigmoid(phi)); d/dphi log p(b) = b - p."""
    b = 1.0 if fp[0] + state[0] > 0.0 else 0.0
    x[0] = b
    s[0] = b - fp[1]


@kernel
def _sigmoid(a):
    if a >= 0.0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@kernel
def bernoulli_path(fp, tau, state, y, h):
    """Binary Concrete: y = sigmoid((phi + L) / tau); h = 1[phi + L > 0]."""
    a = fp[0] + state[0]
    y[0] = _sigmoid(a / tau)
    h[0] = 1.0 if a > 0.0 else 0.0


@kernel
def bernoulli_vjp(fp, tau, state, y, v, g):
    """dy/dphi = y (1 - y) / tau, with 1 - y computed as sigmoid(-a / tau) for accuracy."""
    a = (fp[0] + state[0]) / tau
    g[0] += v[0] * _sigmoid(a) * _sigmoid(-a) / tau


def _bernoulli_prepare(values):
    phi = float(values["logit"])
    return np.array([phi, 0.5 * (1.0 + math.tanh(0.5 * phi))])


register_family(
    Family(
        name="bernoulli",
        params=(Param("logit", 0.0, help="logit phi, p = sigmoid(phi)"),),
        capabilities=frozenset({"score", "relax"}),
        summary="Bernoulli(sigmoid(logit)) by a logistic threshold, gradient w.r.t. the logit",
        prepare=_bernoulli_prepare,
        dim=lambda values: 1,
        coords=lambda values: ["logit"],
        noise=bernoulli_noise,
        score=bernoulli_score,
        path=bernoulli_path,
        vjp=bernoulli_vjp,
        state_size=lambda dim: 1,
        default_objective="squared",
    )
)
