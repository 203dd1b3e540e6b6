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

import numpy as np
import pandas as pd

from gradvar import gumbel, spec

DEFAULT_LOGITS = "2,0.5,0.1"
DEFAULT_TAUS = (0.1, 0.5, 1.0, 10.0)
MIN_EXPECTED = 5.0  # classes expected fewer times than this are pooled for the chi-square
CHUNK_VALUES = 1 << 20  # noise values per chunk (n * K in total)


def _softmax(o):
    z = np.exp(o - o.max())
    return z / z.sum()


def _relaxed(o, g, tau):
    """softmax((o + g) / tau) row-wise, stably (the max subtracted before exp)."""
    a = (o + g) / tau
    a -= a.max(axis=1, keepdims=True)
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


def gumbel_max(logits=DEFAULT_LOGITS, samples=100_000, seed=0, tau=DEFAULT_TAUS, singles=3):
    """Simulate the Gumbel-Max trick and its relaxation.

    Returns ``(results, summary, relaxed)`` DataFrames:

    - ``results``: one row per class: ``class, logit, prob, count, freq, freq_sem, expected``;
    - ``summary``: one row: ``n, classes, seed, chi2, p_value, dof, pooled``;
    - ``relaxed``: ``tau, kind, sample, class, logit, prob, value, sem``, where ``kind`` is
      ``mean`` (Monte Carlo E[y] over the n draws, with its standard error) or ``sample``
      (the first ``singles`` draws, the same noise at every tau).

    Example: ``results, summary, relaxed = gradvar.gumbel_max(logits="1,0,-1", samples=10**5)``.
    """
    o = np.asarray(spec.parse_values(logits, "logits"), dtype=float)
    spec.check_finite("logits", o)
    if len(o) < 2:
        raise spec.SpecError(f"logits: a categorical needs at least 2 classes, got {len(o)}")
    n = spec.parse_count(samples, "samples")
    if n < 1:
        raise spec.SpecError(f"samples must be >= 1, got {n}")
    seed = spec.parse_count(seed, "seed")
    if seed < 0:
        raise spec.SpecError(f"seed must be >= 0, got {seed}")
    taus = spec.parse_values(tau, "tau")
    spec.check_finite("tau", taus, positive=True)
    singles = spec.parse_count(singles, "singles")
    if singles < 0:
        raise spec.SpecError(f"singles must be >= 0, got {singles}")
    k = len(o)
    probs = _softmax(o)
    gen = np.random.default_rng(seed)
    chunk = max(1, CHUNK_VALUES // k)
    counts = np.zeros(k, dtype=np.int64)
    sums, sq = np.zeros((len(taus), k)), np.zeros((len(taus), k))
    first = []
    for start in range(0, n, chunk):
        g = gumbel.sample((min(chunk, n - start), k), rng=gen)
        counts += np.bincount(np.argmax(o + g, axis=1), minlength=k)
        for i, t in enumerate(taus):
            y = _relaxed(o, g, t)
            sums[i] += y.sum(axis=0)
            sq[i] += (y * y).sum(axis=0)
        if len(first) < singles:
            first.extend(g[: singles - len(first)])
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
