#!/usr/bin/env python
"""Benchmark of the straight-through estimators of the categorical (not a test).

    python benchmarks/gumbel_rao.py            # n = 2e6 estimates per estimator
    python benchmarks/gumbel_rao.py --n 2e5    # quicker

At 10 classes (logits 0, -0.5, ..., -4.5), f(y) = (w.y - 0.499)^2, tau = 0.5, in one
process and after compiling: estimates/s and f-evals/s of st, reinmax, gumbel-rao (K' = 10)
and st-gumbel, the cost per estimate of each as a ratio to st-gumbel in the same run (the
target for gumbel-rao: within 8x; its K' = 10 conditional draws of 10 Gumbels and softmaxes
set a floor near 4x), each case the fastest of ``--repeat`` runs; beside them the same per CPU
second (process time of all threads), which a loaded machine disturbs less.  ``--json`` ends
with both rates of every estimator on one line.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# run from a checkout without installing; GRADVAR_CHECKOUT times another checkout's gradvar
# with this script (benchmarks/ab.py: today's main against this branch, alternating)
sys.path.insert(0, os.environ.get("GRADVAR_CHECKOUT") or os.path.dirname(HERE))

from gradvar import engine  # noqa: E402
from gradvar.model import registry  # noqa: E402

NAMES = ("st-gumbel", "st", "reinmax", "gumbel-rao")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=2e6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rao-samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default all)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the rates")
    args = parser.parse_args()
    k, n = args.classes, int(args.n)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    fam = registry.FAMILIES["categorical"]
    obj = registry.OBJECTIVES[("categorical", "squared")]
    values = {"logits": -0.5 * np.arange(k)}
    cell = engine.Cell(
        fam,
        values,
        obj,
        {p.name: p.default_for(k) for p in obj.params},
        options={"tau": 0.5, "rao_samples": float(args.rao_samples)},
    )
    seconds, cpu_seconds = {}, {}  # wall and CPU (all threads) seconds, best of the repeats
    for name in NAMES:
        est = registry.ESTIMATORS[name]
        engine.simulate(cell, est, 1000, 0)  # compile
        runs, cpu_runs = [], []
        for r in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            engine.simulate(cell, est, n, r)
            runs.append(time.perf_counter() - start)
            cpu_runs.append(time.process_time() - cpu)
        seconds[name] = min(runs)
        cpu_seconds[name] = min(cpu_runs)
    print(
        f"categorical, {k} classes, tau = 0.5, K' = {args.rao_samples}, n = {n:.3g}, "
        f"threads = {engine.threads()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'estimator':<12} {'estimates/s':>12} {'f-evals/s':>12} {'cost / st-gumbel':>17}"
        f" {'per CPU-s':>12} {'CPU cost / st-gumbel':>21}"
    )
    for name in NAMES:
        est = registry.ESTIMATORS[name]
        rate = n / seconds[name]
        evals = est.evals(cell.options) * rate
        ratio = seconds[name] / seconds["st-gumbel"]
        cpu_rate = n / cpu_seconds[name]
        cpu_ratio = cpu_seconds[name] / cpu_seconds["st-gumbel"]
        print(
            f"{name:<12} {rate:>12.4g} {evals:>12.4g} {ratio:>16.2f}x"
            f" {cpu_rate:>12.4g} {cpu_ratio:>20.2f}x"
        )
    rao, st = cpu_seconds["gumbel-rao"], cpu_seconds["st-gumbel"]
    print(
        f"gumbel-rao: {n / rao / 1e6:.3g} M estimates per CPU second (target >= 1 at K = K' = 10), "
        f"{rao / st:.2f}x st-gumbel's CPU time per estimate (target <= 8x)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    **{f"{name}, {engine.threads()} threads": n / seconds[name] for name in NAMES},
                    **{f"{name} per CPU second": n / cpu_seconds[name] for name in NAMES},
                }
            )
        )


if __name__ == "__main__":
    main()
