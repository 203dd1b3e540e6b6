#!/usr/bin/env python
"""Compile cost of expression objectives against the same built-in objective (not a test).

    python benchmarks/expressions.py             # 3 repeats per case
    python benchmarks/expressions.py --repeat 5

Each case runs in a fresh process with an empty kernel cache: the first ``engine.simulate``
of one (objective, estimator) combination, which compiles the generated module (and, for
the expression, parses it, differentiates it with sympy and writes its kernel module),
timed with and without the objective's construction.  Printed: the fastest of the repeats
of each, and the ratio expression / built-in (target: at most 1.2).  A second run in the
same cache folder shows the cache hits of the repeated run (it compiles nothing).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CASES = [  # (family, built-in objective, the same as an expression, its parameters, estimator)
    ("normal", "quadratic", "(z - k)**2", {"k": 0.5}, "sf"),
    ("normal", "quadratic", "(z - k)**2", {"k": 0.5}, "reparam"),
    ("normal", "cosine", "cos(omega*z)", {"omega": 1.3}, "reparam"),
    ("bernoulli", "squared", "(b - t)**2", {"t": 0.3}, "sf"),
]

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from gradvar import engine, spec
from gradvar.kernels import codegen
from gradvar.model import registry
family, objective, sets, est = json.loads(sys.argv[1])
fam = registry.FAMILIES[family]
import numba  # Numba's start-up is the same for both: not counted
t1 = time.perf_counter()
obj = spec.objective_entry(fam, objective, tuple(sets))
values = {p.name: p.default_for(1) for p in fam.params}
cell = engine.Cell(fam, values, obj, {**{p.name: p.default_for(1) for p in obj.params}, **sets})
t2 = time.perf_counter()
engine.simulate(cell, registry.ESTIMATORS[est], 1000, 0)
t3 = time.perf_counter()
stats = codegen.compiled(fam, obj, registry.ESTIMATORS[est], (len(cell.coords), cell.width))
stats = stats.run_chunks.stats
hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
print(json.dumps(dict(build=t2 - t1, compile=t3 - t2, total=t3 - t1, hits=hits, misses=misses)))
"""


def child(case, cache):
    env = {**os.environ, "GRADVAR_CACHE_DIR": cache, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(case)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; fastest of {args.repeat} cold-cache runs")
    print(f"{'combination':<36} {'built-in':>9} {'expression':>11} {'ratio':>6} {'(+build)':>9}")
    for family, builtin, expr, sets, est in CASES:
        best = {}
        for objective in (builtin, expr):
            runs = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as cache:
                    runs.append(child((family, objective, sets, est), cache))
            best[objective] = min(runs, key=lambda r: r["total"])
        b, e = best[builtin], best[expr]
        print(
            f"{family + '/' + expr + ' ' + est:<36} {b['compile']:8.2f}s {e['compile']:10.2f}s "
            f"{e['compile'] / b['compile']:6.2f} {e['total'] / b['total']:8.2f}x"
        )
    with tempfile.TemporaryDirectory() as cache:
        case = ("normal", "exp(-k*z**2)", {"k": 1.0}, "reparam")
        first, second = child(case, cache), child(case, cache)
    print(
        f"repeated run of normal/exp(-k*z**2) reparam: first {first['compile']:.2f}s "
        f"(cache misses {first['misses']}), second {second['compile']:.2f}s "
        f"(cache hits {second['hits']}, misses {second['misses']})"
    )


if __name__ == "__main__":
    main()
