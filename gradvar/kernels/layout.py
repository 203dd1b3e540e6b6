"""The kernel ABI in one place: the rows of the ``work`` scratch array.

Every estimator kernel has the signature
``kernel(fp, objp, opts, aux, key, counter0, batch, work, g)`` (see
:class:`gradvar.model.registry.Estimator`).  ``work`` is a (WORK_ROWS, width) scratch array
whose rows are named here; ``width`` is at least the sample dimension, the noise state length
and the number of gradient coordinates.  An estimator declaring ``scratch_rows`` gets that many
rows more, after these, as scratch of its own
(:attr:`gradvar.model.registry.Estimator.work_rows`).  ``opts[Option.index]`` holds the cell's
estimator options (``tau`` ...); the layouts of ``aux`` are stated by the estimators that read it
(``exact``: the exact gradient; ``sf-baseline``: a mode and one baseline per coordinate).
"""

X = 0  # the sample x (hard for score-function estimators, soft y for pathwise ones)
H = 1  # the hard sample h beside a soft y
STATE = 2  # the base noise of one sample
V = 3  # df/dx at the sample
S = 4  # the score d log p / d theta
G = 5  # the estimate being written (the engine's drivers point g here)
WORK_ROWS = 6

# Lanes (``Estimator.lanes``, ``Family.score_lanes``): a block of samples side by side, one
# per column of (width, R) matrices x, h, v, s as the rows above, and q (LANE_Q, R) per-lane
# scalars: rows 0 .. 2 the family's kernels' scratch, F_LANE the value of f.
F_LANE = 3
LANE_Q = 4
