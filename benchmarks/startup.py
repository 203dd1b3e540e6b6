#!/usr/bin/env python
"""Start-up cost and the Normal rates as ``gradvar compare`` reports them (not a test).

    python benchmarks/startup.py                      # this checkout
    python benchmarks/startup.py --base ../wt-base    # and another checkout, alternated

(a) Fixed overhead: the wall time of a tiny ``gradvar compare --estimator
sf,sf-baseline,reparam --samples 1e3`` with ``--no-plot`` and with its plot, warm kernel
cache, as a ratio to ``python -c "import gradvar, numpy, pandas, numba"`` timed in the same
run (each a fresh process; the commands alternate, the fastest of ``--repeat`` runs counts),
in wall time and in the CPU time of the process (user + system), which a loaded machine
disturbs far less.

(b) Rates: estimates/s of ``sf`` and ``reparam`` on normal/quadratic as ``gradvar compare
--threads 1 --samples N`` writes them to results.csv (estimates_per_s), against the bare
kernel loop: the same generated ``run_chunks`` called once over every chunk, one thread, no
Python between chunks, in a process of its own (the fastest of ``--repeat`` runs each).

With ``--base DIR`` every measurement is also made with the checkout DIR (its own
``.venv/bin/python`` if it has one), alternating with this one, and the ratios between the
two are printed.  Each checkout gets its own warm kernel cache in a temporary folder.
Python's bytecode cache is on (PYTHONDONTWRITEBYTECODE is removed from the environment of
the runs, as an installed gradvar has its .pyc files); ``--no-bytecode`` keeps the variable:
then every module of gradvar is compiled from source in every run.
Timings on the shared machine are noisy: the load average is printed beside the figures.
"""

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = "import gradvar, numpy, pandas, numba"
TINY = ["compare", "--estimator", "sf,sf-baseline,reparam", "--samples", "1e3", "--force"]
ESTIMATORS = ("sf", "reparam")
BARE = """
import sys, time
import numpy as np
from gradvar import engine
from gradvar.kernels import codegen, rng
from gradvar.model import registry
import numba
numba.set_num_threads(1)
n = int(float(sys.argv[1]))
fam = registry.FAMILIES["normal"]
obj = registry.OBJECTIVES[("normal", "quadratic")]
cell = engine.Cell(fam, {"mu": 1.0, "sigma": 1.0}, obj, {"k": 0.0})
for name in sys.argv[2:]:
    est = registry.ESTIMATORS[name]
    p = len(cell.coords)
    module = codegen.compiled(fam, obj, est, (p, cell.width))
    size, nchunks = engine.chunking(n, p)
    head = (cell.fp(), cell.objp(), cell.opts(), np.zeros(1 + p), rng.stream_key(0, rng.MAIN))
    head += (1, n, size)
    if hasattr(engine, "chunk_scratch"):
        scratch = engine.chunk_scratch(est, cell, size)
    else:  # a base checkout (--base) may predate it, and work_rows
        rows = getattr(est, "work_rows", 6)
        scratch = (np.empty((rows, cell.width)), np.empty((size, p)), np.empty((4, p)))
    out = (np.empty((nchunks, p, 4)), np.empty((nchunks, 2), dtype=np.int64))
    module.run_chunks(*head, 0, 0, 0, *scratch, *out)  # load outside the timed region
    t0 = time.perf_counter()
    module.run_chunks(*head, 0, nchunks, 0, *scratch, *out)
    print(name, n / (time.perf_counter() - t0))
"""


class Checkout:
    """A gradvar source tree, run with its own virtualenv's Python when it has one."""

    def __init__(self, path, label, scratch, bytecode=True):
        self.path = os.path.abspath(path)
        self.label = label
        own = os.path.join(self.path, ".venv", "bin", "python")
        self.python = own if os.path.exists(own) else sys.executable
        self.env = dict(os.environ, GRADVAR_CACHE_DIR=os.path.join(scratch, f"cache-{label}"))
        self.env["PYTHONPATH"] = self.path
        if bytecode:  # as an installed gradvar runs: modules load from their cached bytecode
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.out = os.path.join(scratch, f"out-{label}")
        found = self.run(["-c", "import gradvar; print(gradvar.__file__)"]).stdout.strip()
        if not found.startswith(self.path + os.sep):
            sys.exit(f"{self.path}: its Python imports gradvar from {found}, not from it")

    def run(self, args):
        return subprocess.run(
            [self.python, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )

    def timed(self, args):
        """(wall seconds, CPU seconds) of one run of ``python args``."""
        c0, t0 = _children_cpu(), time.perf_counter()
        self.run(args)
        return time.perf_counter() - t0, _children_cpu() - c0

    def startup_commands(self):
        tiny = ["-m", "gradvar", *TINY, "--out", self.out]
        return {
            "import line": ["-c", REFERENCE],
            "compare --no-plot": [*tiny, "--no-plot"],
            "compare (plot)": tiny,
        }

    def compare_rates(self, n):
        out = self.out + "-rate"
        self.run(
            ["-m", "gradvar", "compare", "--threads", "1", "--estimator", ",".join(ESTIMATORS)]
            + ["--samples", str(n), "--no-plot", "--quiet", "--force", "--out", out]
        )
        with open(os.path.join(out, "results.csv"), encoding="utf-8") as fh:
            return {r["estimator"]: float(r["estimates_per_s"]) for r in csv.DictReader(fh)}

    def bare_rates(self, n):
        lines = self.run(["-c", BARE, str(n), *ESTIMATORS]).stdout.split("\n")
        return {name: float(rate) for name, rate in (line.split() for line in lines if line)}


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load():
    return f"load {os.getloadavg()[0]:.1f}"


def startup(checkouts, repeat):
    print(f"(a) start-up, warm kernel cache, fastest of {repeat} ({load()})")
    for c in checkouts:  # warm the caches (compiles on a first run)
        for args in c.startup_commands().values():
            c.run(args)
    best = {}
    for _ in range(repeat):
        for c in checkouts:
            for what, args in c.startup_commands().items():
                for kind, t in zip(("wall", "CPU"), c.timed(args), strict=True):
                    key = (c.label, what, kind)
                    best[key] = min(best.get(key, t), t)
    for c in checkouts:
        for what in c.startup_commands():
            line = []
            for kind in ("wall", "CPU"):
                t, ref = best[c.label, what, kind], best[c.label, "import line", kind]
                line.append(f"{kind} {t:6.3f} s = {t / ref:4.2f}x")
            print(f"  {c.label:5s} {what:18s} " + ", ".join(line) + " the import line's")
    if len(checkouts) == 2:
        this, base = (c.label for c in checkouts)
        for what in checkouts[0].startup_commands():
            ratios = [best[this, what, k] / best[base, what, k] for k in ("wall", "CPU")]
            print(f"  this/base {what:18s} wall {ratios[0]:4.2f}x, CPU {ratios[1]:4.2f}x")
    print(f"  ({load()})")


def rates(checkouts, repeat, n):
    print(f"(b) normal/quadratic, 1 thread, n = {n:.0e}, fastest of {repeat} ({load()})")
    best = {}
    for _ in range(repeat):
        for c in checkouts:
            for kind, got in (("compare", c.compare_rates(n)), ("bare loop", c.bare_rates(n))):
                for est, rate in got.items():
                    key = (c.label, kind, est)
                    best[key] = max(best.get(key, rate), rate)
    for c in checkouts:
        for est in ESTIMATORS:
            compare, bare = best[c.label, "compare", est], best[c.label, "bare loop", est]
            print(
                f"  {c.label:5s} {est:8s} compare {compare / 1e6:6.1f} M/s, bare loop "
                f"{bare / 1e6:6.1f} M/s: compare/bare {compare / bare:4.2f}"
            )
    if len(checkouts) == 2:
        for est in ESTIMATORS:
            ratio = (
                best[checkouts[0].label, "compare", est] / best[checkouts[1].label, "compare", est]
            )
            print(f"  this/base {est:8s} compare rate {ratio:4.2f}x")
    print(f"  ({load()})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a second checkout to compare with (today's main)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--samples", type=float, default=2e8, help="n of the rate runs")
    parser.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-rates", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradvar-startup-") as scratch:
        checkouts = [Checkout(HERE, "this", scratch, not args.no_bytecode)]
        if args.base:
            checkouts.append(Checkout(args.base, "base", scratch, not args.no_bytecode))
        if not args.skip_startup:
            startup(checkouts, args.repeat)
        if not args.skip_rates:
            rates(checkouts, max(1, args.repeat // 2), int(args.samples))


if __name__ == "__main__":
    main()
