"""Baselines of the score-function estimator ``sf-baseline``: one entry each.

A baseline with ``fixed`` is computed once per cell from moments of f and the score s:
the engine passes the sums over an independent pilot batch (docs/math.md §2: a
baseline computed from the sample it corrects would be biased), the ground truth the
exact expectations (the oracle baseline, with ``count = 1``).
"""

import numpy as np

from gradvar.model.registry import LEAVE_ONE_OUT, Baseline, register_baseline


def _mean(sum_f, sum_f_s2, sum_s2, count):
    """b = E[f]."""
    return np.full(len(sum_s2), sum_f / count)


def _optimal(sum_f, sum_f_s2, sum_s2, count):
    """b_j = E[f s_j^2] / E[s_j^2], the variance-minimising constant per coordinate; E[f]
    where the score vanishes."""
    safe = np.where(sum_s2 > 0, sum_s2, 1.0)
    return np.where(sum_s2 > 0, sum_f_s2 / safe, sum_f / count)


register_baseline(Baseline("mean", "b = E[f] from an independent pilot batch", fixed=_mean))
register_baseline(
    Baseline(
        "optimal",
        "b_j = E[f s_j^2] / E[s_j^2] from an independent pilot batch",
        fixed=_optimal,
    )
)
register_baseline(
    Baseline(
        "loo",
        "b_i = mean of f over the other samples of the estimate (needs batch >= 2)",
        mode=LEAVE_ONE_OUT,
        min_batch=2,
    )
)
