"""Every default of the commands and the Python API, in one place (no imports: the CLI's
help reads it).  The defaults of family and objective parameters belong to their registry
entries (:mod:`gradvar.model`), those of estimator options to their
:class:`~gradvar.model.registry.Option` entries."""

SAMPLES = 1_000_000  # independent estimates per cell (compare, sweep-tau) or draws (gumbel-max)
SEED = 0
BATCH = 1
BASELINE = "mean"

SWEEP_TAU_FAMILY = "categorical"
SWEEP_TAU_GRID = "log:0.01:10:16"
SWEEP_TAU_ESTIMATORS = "gumbel-softmax,st-gumbel,gumbel-rao,st,reinmax"
SWEEP_TAU_REFERENCES = "sf,sf-baseline"

GUMBEL_MAX_TAUS = (0.1, 0.5, 1.0, 10.0)
GUMBEL_MAX_SINGLES = 3

PICK_ONE_LISTS = ("4,5,6", "0,5,10")
PICK_ONE_SAMPLES = 100_000
