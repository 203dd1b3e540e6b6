#!/usr/bin/env python
"""Benchmark of the Bernoulli estimators against ``sf`` in the same run (not a test).

    python benchmarks/discrete.py            # n = 1e7 per estimator and cell
    python benchmarks/discrete.py --quick    # n = 1e6

For the Bernoulli toy (logit 0, t = 0.499) and multibernoulli with 10 and 100 bits, it times
``engine.simulate`` for ``sf``, ``arm``, ``disarm``, ``rebar`` and ``rebar-tied`` (compiled
first, outside the timing) and prints estimates/s, f-evals/s (estimates/s times the
estimator's evaluations of f per estimate) and both as ratios to ``sf``.  Each case runs
``--repeat`` times and the fastest run is reported; the load average is printed beside it,
since the machine is shared.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# run from a checkout without installing; GRADVAR_CHECKOUT times another checkout's gradvar
# with this script (benchmarks/ab.py: today's main against this branch, alternating)
sys.path.insert(0, os.environ.get("GRADVAR_CHECKOUT") or os.path.dirname(HERE))

import numpy as np  # noqa: E402

from gradvar import engine  # noqa: E402
from gradvar.model import registry  # noqa: E402

ESTIMATORS = ["sf", "arm", "disarm", "rebar", "rebar-tied"]


def cell(family, dim):
    fam = registry.FAMILIES[family]
    values = {"logit": 0.0} if family == "bernoulli" else {"logits": np.zeros(dim)}
    obj = registry.OBJECTIVES[(family, "squared")]
    d = fam.dim(values)
    ov = {p.name: p.default_for(d) for p in obj.params}
    options = {o.name: o.default for o in registry.OPTIONS.values()}
    return engine.Cell(fam, values, obj, ov, options=options)


def rate(c, name, n, repeat):
    est = registry.ESTIMATORS[name]
    engine.simulate(c, est, 1000, seed=0)  # compile or load from the cache
    best = cpu_best = 0.0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        engine.simulate(c, est, n, seed=0)
        best = max(best, n / (time.perf_counter() - t0))
        cpu_best = max(cpu_best, n / (time.process_time() - c0))
    return best, best * est.evals(c.options), cpu_best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default all)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the rates")
    args = parser.parse_args()
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    rates = {}
    n = 10**6 if args.quick else 10**7
    print(f"n = {n:.0e} per case, best of {args.repeat}, threads = {engine.threads()}")
    for family, dim in (("bernoulli", 1), ("multibernoulli", 10), ("multibernoulli", 100)):
        c = cell(family, dim)
        n_case = max(10**4, n // c.dim)
        print(f"\n{family}, D = {c.dim}, n = {n_case:.1e}, load {os.getloadavg()[0]:.2f}")
        print(
            f"{'estimator':12} {'estimates/s':>12} {'f-evals/s':>12} {'vs sf':>7} {'f/s vs sf':>9}"
        )
        base = None
        for name in ESTIMATORS:
            est_rate, f_rate, cpu_rate = rate(c, name, n_case, args.repeat)
            base = base or (est_rate, f_rate)
            rates[f"{family} D={c.dim} {name}"] = est_rate
            rates[f"{family} D={c.dim} {name} per CPU s"] = cpu_rate
            print(
                f"{name:12} {est_rate:12.3e} {f_rate:12.3e} "
                f"{est_rate / base[0]:7.2f} {f_rate / base[1]:9.2f}"
            )
    if args.json:
        print(json.dumps(rates))


if __name__ == "__main__":
    main()
