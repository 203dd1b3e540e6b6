"""What is measured: families, objectives, estimators, baselines."""
