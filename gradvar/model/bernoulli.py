"""Estimators for independent Bernoulli bits: ARM, DisARM, REBAR and REBAR with tied noise.

Conventions (docs/math.md §7): bit i has logit phi_i, p_i = sigmoid(phi_i),
and one uniform u_i ~ U(0, 1).  The families ``bernoulli`` and ``multibernoulli`` draw the
logistic variate L_i = log u_i - log(1 - u_i) (the family's noise state), and these kernels
read u_i back from it as u_i = sigmoid(L_i), so every estimator here shares the family's
noise with ``sf`` and the relaxed estimators (common random numbers):

- z_i = phi_i + L_i, b_i = 1[z_i > 0] = 1[u_i > 1 - p_i] (the family's sample);
- the antithetic pair b1_i = 1[u_i > 1 - p_i] = 1[L_i > -phi_i], b2_i = 1[u_i < p_i] =
  1[L_i < phi_i], and u_i - 1/2 = tanh(L_i / 2) / 2.

REBAR's second uniform v_i comes from the estimator's own stream
(``substream(key, stream_id("rebar"))``, counter c D + i for sample c), so adding it never
moves another estimator's noise; ``rebar-tied`` computes v_i from u_i instead.  The layout
of ``aux`` (prepared per cell by :func:`_aux`): ``[p_0..p_{D-1}, q_0..q_{D-1},
sigmoid(|phi_0|)..]`` with q_i = 1 - p_i, each computed without cancellation, and for REBAR
one more entry, 1 for ``rebar-tied`` (one kernel serves both couplings).

Exact moments (the ``exact`` hooks): ARM and DisARM by enumeration of the 3^D combinations
of per-bit regions of u (inside each region the estimate is linear in u_i or constant), up to
D = ``ARM_ENUM_DIM``; REBAR (both couplings) for one bit by Gauss-Legendre quadrature over the
logistic z given b, refined until two node counts agree (NaN and a note otherwise).
"""

import math

import numpy as np

from gradvar.kernels import fastmath
from gradvar.kernels.fastmath import sigmoid
from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import STATE, H, S, V, X
from gradvar.kernels.rng import stream_id, substream, uniform
from gradvar.model.options import ETA, TAU
from gradvar.model.registry import estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine

REBAR_STREAM = stream_id("rebar")
ARM_ENUM_DIM = 10  # ARM/DisARM exact moments by enumeration of 3^D region combinations
QUAD_NODES = (32, 64, 128, 256, 512)  # Gauss-Legendre nodes per piece, refined in turn
QUAD_RTOL = 1e-10


def _aux(cell):
    """[p, 1 - p, sigmoid(|phi|)] per bit (see the module docstring)."""
    from scipy.special import expit

    phi = cell.fp()[: cell.dim]
    return np.concatenate([expit(phi), expit(-phi), expit(np.abs(phi))])


@estimator(
    "arm",
    "ARM (augment-REINFORCE-merge): antithetic pair b1 = 1[u > 1-p], b2 = 1[u < p]",
    "(f(b1) - f(b2)) * (u - 1/2)",
    requires="bits",
    f_evals=2,
    exact=lambda cell, baseline: _arm_exact(cell, disarm=False),
)
@kernel
def arm(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g_i = (1/M) sum_m (f(b1) - f(b2)) (u_i - 1/2), u_i - 1/2 = sigmoid(L_i) - 1/2
    (= tanh(L_i / 2) / 2; inline, no libm call); unbiased (Yin & Zhou 2019)."""
    b1, b2, st, v = work[X], work[H], work[STATE], work[V]
    d = g.shape[0]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        for i in range(d):
            b1[i] = 1.0 if st[i] > -fp[i] else 0.0
            b2[i] = 1.0 if st[i] < fp[i] else 0.0
        df = obj(b1, objp, v) - obj(b2, objp, v)
        for i in range(d):
            g[i] += df * (sigmoid(st[i]) - 0.5)
    for i in range(d):
        g[i] /= batch


@estimator(
    "disarm",
    "DisARM: ARM with u integrated out given the pair (b1, b2); never more variance than ARM",
    "1/2 (f(b1) - f(b2)) 1[b1 != b2] (-1)^b2 sigmoid(|phi|)",
    requires="bits",
    f_evals=2,
    aux=_aux,
    exact=lambda cell, baseline: _arm_exact(cell, disarm=True),
)
@kernel
def disarm(fp, objp, opts, aux, key, counter0, batch, work, g):
    """g_i = (1/M) sum_m 1/2 (f(b1) - f(b2)) 1[b1_i != b2_i] (-1)^{b2_i} sigmoid(|phi_i|);
    unbiased (Dong, Mnih & Tucker 2020)."""
    b1, b2, st, v = work[X], work[H], work[STATE], work[V]
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
                sign = -1.0 if b2[i] == 1.0 else 1.0
                g[i] += half * sign * aux[2 * d + i]
    for i in range(d):
        g[i] /= batch


@estimator(
    "rebar",
    "REBAR: REINFORCE with the relaxed control variate eta f(s(z~)), z~ ~ p(z | b), v own noise",
    "[f(b) - eta f(s(zt))] (b - p) + eta df(s(z))/dphi - eta df(s(zt))/dphi",
    requires="bits",
    options=("tau", "eta"),
    f_evals=3,
    stream="rebar",
    aux=lambda cell: np.append(_aux(cell), 0.0),
    exact=lambda cell, baseline: _rebar_exact(cell, tied=False),
)
@estimator(
    "rebar-tied",
    "REBAR with v computed from u (the original REBAR code): z~ = z in value, not in derivative",
    "[f(b) - eta f(s(z))] (b - p) + eta df(s(z))/dphi - eta df(s(zt))/dphi",
    requires="bits",
    options=("tau", "eta"),
    f_evals=3,
    aux=lambda cell: np.append(_aux(cell), 1.0),
    exact=lambda cell, baseline: _rebar_exact(cell, tied=True),
)
@kernel
def rebar(fp, objp, opts, aux, key, counter0, batch, work, g):
    """REBAR with fixed eta and tau (Tucker et al. 2017), unbiased; per bit i:

    g_i = [f(b) - eta f(s(zt))] (b_i - p_i) + eta d/dphi_i f(s(z)) - eta d/dphi_i f(s(zt)),

    s = sigmoid(. / tau), z = phi + L, zt = phi + logit(u'), u' = q + p v (b = 1) or q v
    (b = 0), dz/dphi = 1, dzt/dphi = p v / u' (b = 1) or q (1 - v) / (1 - u') (b = 0), with
    1 - u' = p (1 - v) or p + q (1 - v) (= 1 - q v) in closed form.  ``rebar``: v from the
    estimator's own stream (the RELAX authors' code).  ``rebar-tied`` (aux[3 D] = 1):
    v = (u - q) / p or u / q (the original REBAR code), so zt = z in value and dzt/dphi =
    (u - q) / u = p (1 - e^-z) or (q - u) / (1 - u) = q (1 - e^z).
    """
    b, y, st, v, dy = work[X], work[H], work[STATE], work[V], work[S]
    d = g.shape[0]
    tau, eta = opts[TAU], opts[ETA]
    tied = aux[3 * d] == 1.0
    vkey = substream(key, REBAR_STREAM)
    g[:] = 0.0
    for m in range(batch):
        c = counter0 + m
        noise(fp, key, c, st)
        for i in range(d):
            a = fp[i] + st[i]
            b[i] = 1.0 if a > 0.0 else 0.0
            y[i] = sigmoid(a / tau)
        fb = obj(b, objp, v)
        obj(y, objp, v)  # v = grad f at s(z)
        for i in range(d):
            a = (fp[i] + st[i]) / tau
            g[i] += eta * v[i] * sigmoid(a) * sigmoid(-a) / tau
        for i in range(d):
            p, q = aux[i], aux[d + i]
            if tied:  # (u - q) / u = p (1 - e^-z), (q - u) / (1 - u) = q (1 - e^z)
                zt = fp[i] + st[i]
                dzt = -p * math.expm1(-zt) if b[i] == 1.0 else -q * math.expm1(zt)
            else:
                w = uniform(vkey, c * d + i)
                if b[i] == 1.0:
                    up, one_minus_up = q + p * w, p * (1.0 - w)
                    dzt = p * w / up
                    zt = fp[i] + fastmath.log(up) - fastmath.log(one_minus_up)
                else:
                    one_minus_up = p + q * (1.0 - w)  # 1 - q v without cancellation
                    dzt = q * (1.0 - w) / one_minus_up
                    zt = fp[i] + fastmath.log(q) + fastmath.log(w) - fastmath.log(one_minus_up)
            a = zt / tau
            y[i] = sigmoid(a)
            dy[i] = sigmoid(a) * sigmoid(-a) / tau * dzt  # d s(zt_i) / dphi_i
        ft = obj(y, objp, v)  # v = grad f at s(zt)
        for i in range(d):
            score = aux[d + i] if b[i] == 1.0 else -aux[i]  # b - p, as q when b = 1
            g[i] += (fb - eta * ft) * score - eta * v[i] * dy[i]
    for i in range(d):
        g[i] /= batch


# --- ground truth --------------------------------------------------------------------------
def f_rows(cell, x):
    """f and grad f at every row of ``x`` (N, D), in NumPy: the objective's Python kernel
    called once on the transposed (D, N) array when it broadcasts, else row by row."""
    objp, kern = cell.objp(), cell.objective.kernel.py_func
    x = np.asarray(x, dtype=float)
    grad = np.empty(x.shape[::-1])
    try:
        with np.errstate(all="ignore"):
            f = np.asarray(kern(np.ascontiguousarray(x.T), objp, grad), dtype=float)
        if f.shape == (len(x),):
            return f, grad.T
    except Exception:  # an objective written for scalars: evaluate row by row
        pass
    f = np.empty(len(x))
    grad = np.empty_like(x)
    for r, row in enumerate(x):
        f[r] = kern(row.copy(), objp, grad[r])
    return f, grad


def _regions(phi):
    """Per bit, the three regions of u: u < min(p, q), between, u > max(p, q), with their
    probabilities, (b1, b2) and the conditional moments E[u - 1/2], E[(u - 1/2)^2]."""
    from scipy.special import expit

    lo = expit(-np.abs(phi))  # min(p, q)
    mid = np.abs(np.tanh(0.5 * phi))  # max(p, q) - min(p, q)
    prob = np.stack([lo, mid, lo])  # (3, D)
    high = (phi > 0).astype(int)  # the middle region has b1 = b2 = 1 iff p > 1/2
    b1 = np.stack([np.zeros_like(high), high, np.ones_like(high)])
    b2 = np.stack([np.ones_like(high), high, np.zeros_like(high)])
    m = 0.5 * (1.0 - lo)
    mean = np.stack([-m, np.zeros_like(m), m])
    second = np.stack([m**2 + lo**2 / 12, mid**2 / 12, m**2 + lo**2 / 12])
    return prob, b1, b2, mean, second


def _arm_exact(cell, disarm):
    """Exact (mean, variance) of ARM or DisARM by enumeration of the 3^D region combinations
    of u (one (b1, b2) pair per combination; f from a table over the 2^D bit vectors)."""
    from gradvar.model.families import bit_patterns

    d = cell.dim
    if d > ARM_ENUM_DIM:
        nan = np.full(d, np.nan)
        return nan, nan, f"ARM/DisARM: exact by enumeration of 3^D regions up to D = {ARM_ENUM_DIM}"
    phi = cell.fp()[:d]
    prob, b1, b2, mean, second = _regions(phi)
    combos = (np.arange(3**d)[:, None] // 3 ** np.arange(d)) % 3  # (R, D) region per bit
    cols = np.arange(d)
    weight = np.prod(prob[combos, cols], axis=1)
    powers = 2 ** np.arange(d)
    f, _ = f_rows(cell, bit_patterns(d))
    df = f[b1[combos, cols] @ powers] - f[b2[combos, cols] @ powers]
    if disarm:
        sign = np.where(b2 == 1, -1.0, 1.0) * (b1 != b2)  # (3, D)
        coef = 0.5 * sign * _aux(cell)[2 * d :]
        mean, second = coef, coef**2
    g_mean = (weight * df) @ mean[combos, cols]
    g_second = (weight * df**2) @ second[combos, cols]
    return g_mean, np.maximum(g_second - g_mean**2, 0.0) / cell.batch, ""


def _gauss_legendre_pieces(edges, nodes):
    """Nodes and weights of ``nodes``-point Gauss-Legendre on each piece between ``edges``."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    a, b = np.asarray(edges[:-1]), np.asarray(edges[1:])
    half = 0.5 * (b - a)[:, None]
    return ((a + b)[:, None] / 2 + half * x).ravel(), (half * w).ravel()


def _log_logistic_pdf(x):
    ax = np.abs(x)
    return -ax - 2.0 * np.log1p(np.exp(-ax))


def _rebar_pieces(b, phi, tau):
    """Pieces of the z half-line given b (z > 0 for b = 1, z < 0 for b = 0) that hold all but
    e^-45 of the conditional mass, split where the integrand has structure: the relaxation
    around 0 (scale tau) and the logistic density around phi."""
    sgn = 1.0 if b == 1 else -1.0
    # work on s = sgn z > 0, whose density is proportional to pdf(s - sgn phi)
    c = sgn * phi
    lo, hi = max(0.0, c - 45.0), max(0.0, c) + 45.0
    marks = [tau, 5 * tau, 40 * tau, c - 15, c - 5, c, c + 5, c + 15]
    edges = sorted({lo, hi, *(m for m in marks if lo < m < hi)})
    return sgn, c, edges


def _rebar_parts(cell, b, z):
    """A_b(z) and C(z) of one bit (``_rebar_exact``) at the points z."""
    from scipy.special import expit

    phi = float(cell.fp()[0])
    tau, eta = cell.tau, float(cell.options.get("eta", np.nan))
    p, q = expit(phi), expit(-phi)
    fb, _ = f_rows(cell, np.array([[float(b)]]))
    y = expit(z / tau)
    fy, grad = f_rows(cell, y[:, None])
    ds = expit(z / tau) * expit(-z / tau) / tau  # d s(z) / dz
    # dzt/dphi = (u' - q) / u' = p (1 - e^-z) (b = 1), (q - u') / (1 - u') = q (1 - e^z)
    dzt = -p * np.expm1(-z) if b == 1 else -q * np.expm1(z)
    c = eta * grad[:, 0] * ds
    a = (fb[0] - eta * fy) * (q if b == 1 else -p) - c * dzt  # b - p without cancellation
    return a, c


def _rebar_exact(cell, tied):
    """Exact (mean, variance) of REBAR for one bit.

    Given b, z = phi + L and zt both have the law of z given b, and the estimate is
    g = A_b(zt) + C(z) with C(z) = eta d f(s(z))/dz and A_b(zt) = [f(b) - eta f(s(zt))](b - p)
    - eta d f(s(zt))/dz dzt/dphi (dzt/dphi a function of zt given b: (u' - q)/u' =
    p (1 - e^-zt) or (q - u')/(1 - u') = q (1 - e^zt), u' = sigmoid(zt - phi)).
    Independent v: A and C are independent given b; tied: zt = z.  Each conditional moment
    is a 1-D integral over the z half-line, by Gauss-Legendre on pieces, refined until two
    node counts agree.
    """
    from scipy.special import log_expit

    nan = np.full(cell.dim, np.nan)
    if cell.dim != 1:
        return nan, nan, "REBAR: exact moments for one bit only"
    phi, tau = float(cell.fp()[0]), cell.tau
    previous = None
    for nodes in QUAD_NODES:
        terms = []
        for b in (0, 1):
            sgn, c, edges = _rebar_pieces(b, phi, tau)
            s, w = _gauss_legendre_pieces(edges, nodes)
            z = sgn * s
            logp_b = log_expit(phi) if b == 1 else log_expit(-phi)
            w = w * np.exp(_log_logistic_pdf(s - c) - logp_b)  # conditional density given b
            a, cz = _rebar_parts(cell, b, z)
            terms.append((math.exp(logp_b), w, a, cz))
        mean = sum(pb * (w @ (a + cz)) for pb, w, a, cz in terms)
        second = 0.0
        for pb, w, a, cz in terms:
            if tied:
                second += pb * (w @ (a + cz - mean) ** 2)
            else:
                ea, ec = w @ a, w @ cz
                second += pb * (w @ (a - ea) ** 2 + w @ (cz - ec) ** 2 + (ea + ec - mean) ** 2)
        current = np.array([mean, second])
        if not np.all(np.isfinite(current)):
            break
        if previous is not None and np.allclose(
            current, previous, rtol=QUAD_RTOL, atol=QUAD_RTOL * np.abs(current).max()
        ):
            return np.array([mean]), np.array([second]) / cell.batch, ""
        previous = current
    return nan, nan, "REBAR: quadrature did not converge"
