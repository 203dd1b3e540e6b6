#!/usr/bin/env python
"""Benchmark of the Gaussian-survey estimators against ``reparam`` (not a test).

    python benchmarks/gaussian.py              # n = 5e7 estimates per estimator
    python benchmarks/gaussian.py --quick      # n = 5e6

In one process, on normal/quadratic (mu = 1, sigma = 1, k = 0), it times ``engine.simulate``
(kernels compiled beforehand) for reparam, mvd, mvd-coupled, sf-delta and reparam-delta with
the same thread count, and prints estimates/s, the ratio to reparam per estimate and per
evaluation of f (``Estimator.f_evals``: mvd makes 4, reparam 1).  Target (issue 11): mvd at
least 0.10x reparam per estimate, 0.4x per evaluation.  Each case runs ``--repeat`` times
and the fastest is reported; the load average is printed beside it (a shared machine is
noisy).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from gradvar import engine  # noqa: E402
from gradvar.model import registry  # noqa: E402

ESTIMATORS = ("reparam", "mvd", "mvd-coupled", "sf-delta", "reparam-delta")
TARGETS = {"mvd": (0.10, 0.4)}  # (per estimate, per evaluation of f) relative to reparam


def cell():
    fam = registry.FAMILIES["normal"]
    obj = registry.OBJECTIVES[("normal", "quadratic")]
    return engine.Cell(fam, {"mu": 1.0, "sigma": 1.0}, obj, {"k": 0.0})


def rate(est, n, repeat):
    c = cell()
    engine.simulate(c, est, 1000, seed=1)  # compile (or load the cache) first
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        engine.simulate(c, est, n, seed=0)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="n = 5e6 instead of 5e7")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (fastest kept)")
    parser.add_argument("--threads", type=int, default=0, help="numba threads (0: default)")
    args = parser.parse_args()
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    n = 5_000_000 if args.quick else 50_000_000
    threads = numba.get_num_threads()
    print(f"normal/quadratic, n = {n:.0e}, threads = {threads}, repeat = {args.repeat}")
    rates = {}
    for name in ESTIMATORS:
        rates[name] = rate(registry.ESTIMATORS[name], n, args.repeat)
    ref = rates["reparam"]
    head = ("estimator", "estimates/s", "f evals", "x reparam", "x per f")
    print(f"{head[0]:<14} {head[1]:>12} {head[2]:>8} {head[3]:>10} {head[4]:>8}  load")
    failed = False
    for name, r in rates.items():
        evals = registry.ESTIMATORS[name].evals({})
        per_est, per_f = r / ref, r * evals / ref
        load = os.getloadavg()[0]
        line = f"{name:<14} {r:12.3e} {evals:8g} {per_est:10.3f} {per_f:8.3f}  {load:.2f}"
        if name in TARGETS:
            ok = per_est >= TARGETS[name][0] and per_f >= TARGETS[name][1]
            failed |= not ok
            line += (
                f"   target {TARGETS[name][0]}x / {TARGETS[name][1]}x: {'met' if ok else 'MISSED'}"
            )
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
