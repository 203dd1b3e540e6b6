"""The Gumbel-Max trick, shown by simulation (``gradvar gumbel-max``).

``argmax_j (o_j + G_j)`` with G_j iid standard Gumbel is distributed as softmax(o): the
empirical frequencies of n draws are tested against the probabilities with Pearson's
chi-square.  The same noise then gives the relaxed samples y = softmax((o + G) / tau):
their Monte Carlo expectation (softmax(o) as tau -> 0, uniform as tau -> infinity) and a
few single samples, one-hot-like at small tau.

Noise comes from :func:`gradvar.gumbel.sample` (inverse cdf of open-interval uniforms) in
fixed-size chunks, so memory does not grow with n and the result depends on the seed and n
only.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradvar import defaults, gumbel, interrupt, io, spec
from gradvar.model import FAMILIES
from gradvar.model.families import softmax
from gradvar.studies.base import (
    Snapshot,
    Study,
    check_unknown_keywords,
    from_keywords,
    saved_states,
)

MIN_EXPECTED = 5.0  # classes expected fewer times than this are pooled for the chi-square
CHUNK_VALUES = 1 << 20  # noise values per chunk (n * K in total)


def _relaxed(o, g, tau):
    """softmax((o + g) / tau) row-wise, stably: exp(((o + g) - max(o + g)) / tau), the max
    subtracted before the division by tau, as the kernels do (logits near 1e308 at a small
    tau overflowed to inf - inf = NaN)."""
    a = o + g
    with np.errstate(over="ignore"):  # a gap beyond the largest double: -inf, exp(-inf) = 0
        a -= a.max(axis=1, keepdims=True)
        a /= tau
    np.exp(a, out=a)
    a /= a.sum(axis=1, keepdims=True)
    return a


def chi_square(counts, probs, min_expected=MIN_EXPECTED):
    """Pearson's chi-square of counts against probabilities, pooling the classes expected
    fewer than ``min_expected`` times into one bin (dropped if that bin is still too small).

    Returns (statistic, p-value, degrees of freedom, number of classes pooled).  A count in
    a class of probability 0 gives p-value 0: the sampler produced the impossible.
    """
    from scipy import stats

    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    expected = n * np.asarray(probs, dtype=float)
    if np.any((expected == 0) & (counts > 0)):
        return np.inf, 0.0, int(np.sum(expected > 0) - 1), int(np.sum(expected < min_expected))
    small = expected < min_expected
    obs, exp = list(counts[~small]), list(expected[~small])
    if small.any() and expected[small].sum() >= min_expected:
        obs.append(counts[small].sum())
        exp.append(expected[small].sum())
    if len(obs) < 2:
        return 0.0, 1.0, 0, int(small.sum())
    obs, exp = np.array(obs), np.array(exp)
    exp *= obs.sum() / exp.sum()  # identical totals, as scipy requires
    res = stats.chisquare(obs, exp)
    return float(res.statistic), float(res.pvalue), len(obs) - 1, int(small.sum())


@dataclass
class GumbelMaxSpec:
    logits: np.ndarray
    samples: int
    seed: int
    tau: list
    singles: int
    no_plot: bool = False


def _default_logits():
    return FAMILIES["categorical"].params[0].default_for(0)


class GumbelMax(Study):
    name = "gumbel-max"
    resumable = True  # the draws so far are saved as they go
    tables = ("results", "summary", "relaxed")

    def allowed_keys(self):
        return {"logits", "tau", "singles", "samples", "seed", "no-plot"}

    def spec(self, experiment):
        raw = experiment.get("logits")
        o = np.asarray(
            _default_logits() if raw is None else spec.parse_values(raw, "logits"), dtype=float
        )
        spec.check_finite("logits", o)
        if len(o) < 2:
            raise spec.SpecError(f"logits: a categorical needs at least 2 classes, got {len(o)}")
        if len(o) > spec.MAX_CLASSES:
            raise spec.SpecError(f"logits: at most {spec.MAX_CLASSES} classes, got {len(o)}")
        n = spec.parse_count(experiment.get("samples", defaults.SAMPLES), "samples")
        spec.check_size(n, "samples", spec.MAX_SAMPLES)
        seed = spec.check_seed(experiment.get("seed", defaults.SEED))
        taus = spec.parse_values(experiment.get("tau", defaults.GUMBEL_MAX_TAUS), "tau")
        spec.check_finite("tau", taus, positive=True)
        singles = spec.parse_count(
            experiment.get("singles", defaults.GUMBEL_MAX_SINGLES), "singles"
        )
        if not 0 <= singles <= spec.MAX_SINGLES:
            raise spec.SpecError(f"singles must be >= 0 and <= {spec.MAX_SINGLES}, got {singles}")
        no_plot = spec.flag_of(experiment.get("no-plot", False), "no-plot")
        return GumbelMaxSpec(o, n, seed, taus, singles, no_plot)

    def resolved(self, spec):
        return {
            "command": self.name,
            "logits": [float(v) for v in spec.logits],
            "tau": spec.tau,
            "singles": spec.singles,
            "samples": spec.samples,
            "seed": spec.seed,
            "no-plot": spec.no_plot,
        }

    def run(self, spec, progress=None, checkpoint=None):
        results, summary, relaxed = simulate(spec, checkpoint)
        return {"results": results, "summary": summary, "relaxed": relaxed}

    def kept(self, spec, cells):
        state = saved_states(cells).get(f"draws{io.STATE_SUFFIX}", {})
        return f"{int(state.get('start', 0)):,} of {spec.samples:,} draws"

    def meta(self, spec, tables):
        return {
            "noise": "numpy.random.default_rng(seed), uniforms "
            "(m + 1/2) 2^-52 strictly inside (0, 1), Gumbel by the inverse cdf"
        }


STUDY = GumbelMax()


def gumbel_max(
    logits=None,
    samples=defaults.SAMPLES,
    seed=defaults.SEED,
    tau=defaults.GUMBEL_MAX_TAUS,
    singles=defaults.GUMBEL_MAX_SINGLES,
    **unknown,
):
    """Simulate the Gumbel-Max trick and its relaxation.

    Returns ``(results, summary, relaxed)`` DataFrames:

    - ``results``: one row per class: ``class, logit, prob, count, freq, freq_sem, expected``;
    - ``summary``: one row: ``n, classes, seed, chi2, p_value, dof, pooled``;
    - ``relaxed``: ``tau, kind, sample, class, logit, prob, value, sem``, where ``kind`` is
      ``mean`` (Monte Carlo E[y] over the n draws, with its standard error) or ``sample``
      (the first ``singles`` draws, the same noise at every tau).

    Example: ``results, summary, relaxed = gradvar.gumbel_max(logits="1,0,-1", samples=10**5)``.
    """
    check_unknown_keywords(STUDY, unknown, "gumbel_max")
    experiment = from_keywords(
        STUDY, dict(logits=logits, samples=samples, seed=seed, tau=tau, singles=singles)
    )
    tables = STUDY.run(STUDY.spec(experiment))
    return tables["results"], tables["summary"], tables["relaxed"]


def _resumed(snapshot, n, k, m, chunk, seed):
    """(first draw, generator, counts, sums, sums of squares, first draws) for ``m``
    temperatures: afresh, or as ``snapshot`` saved them."""
    gen = np.random.default_rng(seed)
    saved = snapshot.load() if snapshot is not None else None
    if saved is not None:
        try:
            begin = int(saved["start"])
            counts = np.array(saved["counts"], dtype=np.int64)
            sums = np.array(saved["sums"], dtype=float)
            sq = np.array(saved["sq"], dtype=float)
            first = [np.array(row, dtype=float) for row in saved["first"]]
            if not (0 < begin <= n and (begin % chunk == 0 or begin == n)):
                raise ValueError
            if counts.shape != (k,) or int(counts.sum()) != begin:
                raise ValueError
            if sums.shape != (m, k) or sq.shape != (m, k) or any(r.shape != (k,) for r in first):
                raise ValueError
            gen.bit_generator.state = saved["rng"]
            return begin, gen, counts, sums, sq, first
        except (KeyError, TypeError, ValueError):
            snapshot.damaged()
            gen = np.random.default_rng(seed)
    return 0, gen, np.zeros(k, dtype=np.int64), np.zeros((m, k)), np.zeros((m, k)), []


def simulate(spec, checkpoint=None):
    """The three tables of a validated :class:`GumbelMaxSpec`.

    With ``checkpoint`` (a folder), the draws so far (counts, sums, the first draws and the
    generator state after the last whole chunk) are saved there as they go
    (``draws.state.json``) and resumed from, so an interrupted run continues bit for bit.
    """
    o, n, seed, taus, singles = spec.logits, spec.samples, spec.seed, spec.tau, spec.singles
    k = len(o)
    probs = softmax(o)
    chunk = max(1, CHUNK_VALUES // k)
    snapshot = None if checkpoint is None else Snapshot(checkpoint, "draws")
    begin, gen, counts, sums, sq, first = _resumed(snapshot, n, k, len(taus), chunk, seed)

    def state():
        return {
            "start": start + len(g),
            "counts": counts.tolist(),
            "sums": sums.tolist(),
            "sq": sq.tolist(),
            "first": [list(map(float, row)) for row in first],
            "rng": gen.bit_generator.state,
        }

    for start in range(begin, n, chunk):
        interrupt.check()
        g = gumbel.sample((min(chunk, n - start), k), rng=gen)
        counts += np.bincount(np.argmax(o + g, axis=1), minlength=k)
        for i, t in enumerate(taus):
            y = _relaxed(o, g, t)
            sums[i] += y.sum(axis=0)
            sq[i] += (y * y).sum(axis=0)
        if len(first) < singles:
            first.extend(g[: singles - len(first)])
        if snapshot is not None:
            snapshot.save(state, force=start + len(g) >= n)
    freq = counts / n
    results = pd.DataFrame(
        dict(
            **{"class": np.arange(k)},
            logit=o,
            prob=probs,
            count=counts,
            freq=freq,
            freq_sem=np.sqrt(freq * (1 - freq) / n),
            expected=n * probs,
        )
    )
    chi2, p_value, dof, pooled = chi_square(counts, probs)
    summary = pd.DataFrame(
        [dict(n=n, classes=k, seed=seed, chi2=chi2, p_value=p_value, dof=dof, pooled=pooled)]
    )
    rows = []
    for i, t in enumerate(taus):
        mean = sums[i] / n
        var = np.maximum(sq[i] / n - mean * mean, 0.0) * n / max(n - 1, 1)
        sem = np.sqrt(var / n) if n > 1 else np.full(k, np.nan)
        for j in range(k):
            rows.append(
                dict(
                    tau=t,
                    kind="mean",
                    sample=np.nan,
                    **{"class": j},
                    logit=o[j],
                    prob=probs[j],
                    value=mean[j],
                    sem=sem[j],
                )
            )
        for s, g in enumerate(first):
            y = _relaxed(o, g[None, :].copy(), t)[0]
            for j in range(k):
                rows.append(
                    dict(
                        tau=t,
                        kind="sample",
                        sample=s,
                        **{"class": j},
                        logit=o[j],
                        prob=probs[j],
                        value=y[j],
                        sem=np.nan,
                    )
                )
    return results, summary, pd.DataFrame(rows)
