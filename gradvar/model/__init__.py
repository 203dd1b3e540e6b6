"""What is measured: families, objectives, estimators, baselines and estimator options.

Importing this package (or anything in it) fills the registries of
:mod:`gradvar.model.registry`; the tables are re-exported here.
"""

from gradvar.model import (  # noqa: F401
    baselines,
    bernoulli,
    categorical,
    estimators,
    families,
    gaussian,
    objectives,
    options,  # noqa: F401  (registers first: kernels use its indices)
    relax,
)
from gradvar.model.registry import BASELINES, ESTIMATORS, FAMILIES, OBJECTIVES, OPTIONS

__all__ = ["BASELINES", "ESTIMATORS", "FAMILIES", "OBJECTIVES", "OPTIONS"]
