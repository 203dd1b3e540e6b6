"""RELAX (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018) for one Bernoulli bit, trained in
``gradvar train``.

REBAR (docs/math.md §7, ``rebar``) whose control variate has trained parameters:

    c(z) = eta f(s(z)) + r_psi(s(z)),   s(z) = sigmoid(z / tau),
    g = [f(b) - c(zt)] (b - p) + d c(z)/dphi - d c(zt)/dphi,

with the noise of ``rebar``: z = phi + L (the family's logistic variate, so sf and rebar see
the same u), b = 1[z > 0], zt = phi + logit(u') from an independent v of RELAX's own stream
(u' = q + p v if b = 1, q v if b = 0; 1 - u' in closed form), dz/dphi = 1 and dzt/dphi =
p v / u' (b = 1) or q (1 - v) / (1 - u') (b = 0).  Given b, z and zt both have the law of z
given b, so g is unbiased for every (eta, tau, psi).

The surrogate is the authors' toy network (their ``rebar_toy.py``; docs/math.md writes it
r_psi(z), a function of z through s(z)): one hidden layer of
``HIDDEN`` tanh units on 2 s - 1, r(s) = w . tanh(W (2 s - 1) + c) + b0.  It starts at zero
(w = 0, b0 = 0: RELAX starts as REBAR, as their zero-initialised output scale does); W is
Glorot-uniform, c = 0.  The trained vector is theta = [eta, log tau, W, c, w, b0]; the
authors train eta, log tau and psi by Adam on g^2 with the learning rate of the model
(0.01 on the toy), on the same sample that drives the model's step.  :func:`estimates`
returns g and dg/dtheta per sample (derived by hand below, tested against finite differences),
so that d g^2 / d theta = 2 g dg/dtheta needs no automatic differentiation.  f, f' and f''
come from the objective's ``derivatives_at`` (f'' enters through d/d log tau).
"""

import numpy as np

from gradvar.kernels import rng
from gradvar.model.registry import estimator

HIDDEN = 10
STREAM = "relax"
STREAM_ID = rng.stream_id(STREAM)


def initial(seed, tau, eta, hidden=HIDDEN):
    """theta = [eta, log tau, W, c, w, b0] at the start of a trajectory with seed ``seed``."""
    gen = np.random.default_rng(np.random.SeedSequence([int(seed), int(STREAM_ID)]))
    limit = np.sqrt(6.0 / (1 + hidden))  # Glorot uniform for the 1 -> hidden layer
    weights = gen.uniform(-limit, limit, hidden)
    zeros = np.zeros(hidden)
    return np.concatenate([[float(eta), np.log(float(tau))], weights, zeros, zeros, [0.0]])


def names(hidden=HIDDEN):
    """The names of theta's entries, in order."""
    return ["eta", "log_tau", *(f"{k}[{j}]" for k in "Wcw" for j in range(hidden)), "b0"]


def noise(key, replicates, batch, start=0):
    """(u, v), each (replicates, batch): u of the family's main stream at counters c M + m
    (the engine's for estimate c, sample m; one bit), v of RELAX's own stream at the same
    counters."""
    counters = np.arange(start * batch, (start + replicates) * batch).reshape(replicates, batch)
    vkey = rng.substream_key(key, STREAM_ID)
    return rng.uniform_array(key, counters), rng.uniform_array(vkey, counters)


def _network(x, psi):
    """r, r', r'' of the surrogate at x, and dr/dpsi, dr'/dpsi (trailing axis: psi).

    With a = 2 x - 1, h = tanh(W a + c), t = 1 - h^2: r = w . h + b0, r' = 2 w . (t W),
    r'' = -8 w . (h t W^2); dr/d(W, c, w, b0) = (w t a, w t, h, 1), dr'/d(W, c, w, b0) =
    (2 w (t - 2 W h t a), -4 w W h t, 2 t W, 0).
    """
    n = (len(psi) - 1) // 3
    weights, bias, out, b0 = psi[:n], psi[n : 2 * n], psi[2 * n : 3 * n], psi[3 * n]
    a = (2.0 * x - 1.0)[..., None]
    h = np.tanh(a * weights + bias)
    t = 1.0 - h * h
    r = h @ out + b0
    r1 = 2.0 * (t * weights) @ out
    r2 = -8.0 * (h * t * weights**2) @ out
    one, zero = np.ones(x.shape + (1,)), np.zeros(x.shape + (1,))
    dr = np.concatenate([out * t * a, out * t, h, one], axis=-1)
    dr1 = np.concatenate(
        [
            2.0 * out * (t - 2.0 * weights * h * t * a),
            -4.0 * out * weights * h * t,
            2.0 * t * weights,
            zero,
        ],
        axis=-1,
    )
    return r, r1, r2, dr, dr1


def control_variate(z, theta, at, values):
    """c(z), h(z) = d c(s(z)) / dz, and their derivatives w.r.t. theta (trailing axis).

    With rho = log tau, s = sigmoid(z / tau), s1 = s (1 - s), ds/drho = -s1 z / tau,
    c' = eta f'(s) + r'(s), c'' = eta f''(s) + r''(s): h = c' s1 / tau;
    dc/d(eta, rho, psi) = (f(s), c' ds/drho, dr/dpsi);
    dh/d(eta, rho, psi) = (f'(s) s1 / tau, c'' ds/drho s1 / tau + c' ((1 - 2 s) ds/drho - s1)
    / tau, dr'/dpsi s1 / tau).
    """
    from scipy.special import expit

    eta, tau, psi = theta[0], np.exp(theta[1]), theta[2:]
    a = z / tau
    s = expit(a)
    s1 = s * expit(-a)
    f0, f1, f2 = at(s, values)[:3]
    r, r1, r2, dr, dr1 = _network(s, psi)
    c = eta * f0 + r
    c1 = eta * f1 + r1
    c2 = eta * f2 + r2
    h = c1 * s1 / tau
    ds = -s1 * a
    dc = np.concatenate([f0[..., None], (c1 * ds)[..., None], dr], axis=-1)
    dh_drho = (c2 * ds * s1 + c1 * ((1.0 - 2.0 * s) * ds - s1)) / tau
    dh = np.concatenate(
        [(f1 * s1 / tau)[..., None], dh_drho[..., None], dr1 * (s1 / tau)[..., None]], axis=-1
    )
    return c, h, dc, dh


def conditional(phi, u, v):
    """b, z, zt, dzt/dphi and b - p (as q when b = 1) for noise (u, v) at logit phi."""
    from scipy.special import expit

    p, q = expit(phi), expit(-phi)
    z = phi + np.log(u) - np.log1p(-u)  # the family's logistic variate, as bernoulli_noise
    b = z > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        up1, om1 = q + p * v, p * (1.0 - v)  # b = 1: u', 1 - u'
        om0 = p + q * (1.0 - v)  # b = 0: 1 - u' = 1 - q v without cancellation
        zt = np.where(b, phi + np.log(up1) - np.log(om1), phi + np.log(q) + np.log(v) - np.log(om0))
        dzt = np.where(b, p * v / up1, q * (1.0 - v) / om0)
    return b.astype(float), z, zt, dzt, np.where(b, q, -p)


def estimates(phi, theta, u, v, at, values):
    """RELAX per sample: g and dg/dtheta (trailing axis) for noise (u, v) of any shape.

    g = [f(b) - c(zt)] (b - p) + h(z) - h(zt) dzt/dphi (h = dc/dz, see
    :func:`control_variate`), dg/dtheta = -(b - p) dc(zt) + dh(z) - dzt/dphi dh(zt).
    """
    b, z, zt, dzt, score = conditional(phi, u, v)
    fb = at(b, values)[0]
    _, hz, _, dhz = control_variate(z, theta, at, values)
    ct, ht, dct, dht = control_variate(zt, theta, at, values)
    g = (fb - ct) * score + hz - ht * dzt
    dg = -score[..., None] * dct + dhz - dzt[..., None] * dht
    return g, dg


@estimator(
    "relax",
    "RELAX: REBAR whose control variate eta f(s(z)) + r_psi(s(z)) (psi a small network) is "
    "trained online with eta and tau to minimise the variance",
    "[f(b) - c(zt)] (b - p) + dc(z)/dphi - dc(zt)/dphi, c = eta f(s(.)) + r_psi(s(.))",
    requires="one-bit",
    options=("tau", "eta"),
    f_evals=3,
    stream=STREAM,
    train_only=True,
    needs_derivatives=2,
)
def relax(phi, theta, u, v, at, values):
    """Not a kernel: ``gradvar train`` calls :func:`estimates` (this is its registry entry)."""
    return estimates(phi, theta, u, v, at, values)
