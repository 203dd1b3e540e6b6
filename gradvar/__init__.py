"""gradvar: a Monte Carlo laboratory for gradient estimators."""
__version__ = "0.1.0"
