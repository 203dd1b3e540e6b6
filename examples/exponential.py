"""An example plugin: the exponential distribution and one objective with a closed form.

Run it with ``--plugin``::

    gradvar list --plugin examples/exponential.py
    gradvar compare --plugin examples/exponential.py --family exponential --param lam=0.5:4:8
    gradvar compare --plugin examples/exponential.py --family exponential --objective 'abs(z - 1)'

The family: z ~ Exponential(rate lam), drawn as z = E / lam with E ~ Exp(1) (the base
noise), so it has both capabilities: the score d/dlam log p(z) = 1/lam - z and the pathwise
derivative dz/dlam = -E / lam^2.  Its ground truth: Gauss-Laguerre quadrature over E
(refined until two node counts agree), and the density of E for adaptive integration where
an expression objective has kinks or jumps.  A plugin family's parameters are given with
``--param NAME=VALUES`` (the command-line options are built before plugins load).

The objective: f(z) = exp(-c z), E f = lam / (lam + c), dE f/dlam = c / (lam + c)^2.
Expressions work on the family too (``--objective 'exp(-c*z)' --set c=1`` gives the same).
"""

import math

import numpy as np

from gradvar.kernels import rng
from gradvar.kernels.jit import kernel
from gradvar.model.registry import Family, Param, objective, register_family


# --- the family: Exponential(rate lam), z = E / lam with E ~ Exp(1) -------------------------
@kernel
def exponential_noise(fp, key, counter, state):
    """E = -log U ~ Exp(1), U from the counter-based generator at (key, counter)."""
    state[0] = -math.log(rng.uniform(key, counter))


@kernel
def exponential_score(fp, state, x, s):
    """z = E / lam; d/dlam log p(z) = d/dlam (log lam - lam z) = 1/lam - z."""
    z = state[0] / fp[0]
    x[0] = z
    s[0] = 1.0 / fp[0] - z


@kernel
def exponential_path(fp, tau, state, y, h):
    """z = E / lam (soft and hard coincide)."""
    z = state[0] / fp[0]
    y[0] = z
    h[0] = z


@kernel
def exponential_vjp(fp, tau, state, y, v, g):
    """dz/dlam = -E / lam^2: g += v dz/dlam."""
    g[0] += v[0] * (-state[0] / (fp[0] * fp[0]))


def _laguerre(values, nodes):
    """Gauss-Laguerre nodes and weights: E over E ~ Exp(1) (the weights sum to 1)."""
    x, w = np.polynomial.laguerre.laggauss(nodes)
    return x[:, None], w


register_family(
    Family(
        name="exponential",
        params=(Param("lam", 2.0, positive=True, help="rate lambda"),),
        capabilities=frozenset({"score", "reparam"}),
        summary="Exponential(rate lam), gradient w.r.t. lam",
        prepare=lambda values: np.array([float(values["lam"])]),
        dim=lambda values: 1,
        coords=lambda values: ["lam"],
        noise=exponential_noise,
        score=exponential_score,
        path=exponential_path,
        vjp=exponential_vjp,
        state_size=lambda dim: 1,
        default_objective="decay",
        default_estimators=("sf", "sf-baseline", "reparam"),
        variable="z",
        quadrature=_laguerre,
        quadrature_nodes=(20, 40, 80, 160),
        injection_exact=frozenset({"score", "reparam"}),
        noise_pdf=lambda e: math.exp(-e),
        noise_support=(0.0, math.inf),
    )
)


# --- an objective: f(z) = exp(-c z) ------------------------------------------------------------
@objective(
    "exponential",
    "decay",
    params=(Param("c", 1.0, help="decay rate"),),
    summary="f(z) = exp(-c z)",
    formula="exp(-c*z)",
    exact_mean=lambda fam, p: fam["lam"] / (fam["lam"] + p["c"]),
    exact_grad=lambda fam, p: np.array([p["c"] / (fam["lam"] + p["c"]) ** 2]),
)
@kernel
def exponential_decay(x, objp, grad):
    """f = exp(-c z), f' = -c exp(-c z)."""
    f = math.exp(-objp[0] * x[0])
    grad[0] = -objp[0] * f
    return f
