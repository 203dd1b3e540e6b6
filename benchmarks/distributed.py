#!/usr/bin/env python
"""Benchmark of ``--scheduler`` (issue 13): a sweep locally against a local Dask cluster.

    python benchmarks/distributed.py            # 64 cells of n = 1e7 (sf, normal/quadratic)
    python benchmarks/distributed.py --quick    # 16 cells of n = 1e6
    python benchmarks/distributed.py --repeat 5 # each case 5 times, interleaved (default 3)

In one process: the sweep (``mu`` over 64 values, estimator ``sf``) runs with
``gradvar.compare`` on 2 engine threads here, then on a LocalCluster of 2 worker processes
(1 engine thread each: the same 2 cores; as ``--scheduler local:2`` starts it), started
beforehand and warmed up (kernels loaded in every worker), so the comparison is of the
running, not of starting Dask.  The two
results must agree byte for byte apart from the timing columns.

The overhead per cell is (cluster time - local time) / cells.  The per-task overhead is
then measured on tiny cells (n = 1000: nothing but overhead) on a 1- and a 2-worker cluster:
with C cells, T_W = C (o_w / W + o_s) separates the part of the overhead the workers share
(o_w: the task's set-up on the worker, the transfers) from the serial part (o_s: the client
and the scheduler handle tasks one at a time).  The model of a sweep of C cells of t seconds
on W workers is then

    T(W) = C ((t + o_w) / W + o_s),    speed-up S(W) = C t / T(W),

whose limit W -> infinity is t / o_s: the scheduler's throughput bounds the scaling.
Timings on a shared machine are noisy: the cases run interleaved, ``--repeat`` times, and the
fastest of each is used; each round prints the load average.
"""

import argparse
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# this file's folder would shadow the distributed package; run from a checkout without installing
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import distributed  # noqa: E402

import gradvar  # noqa: E402
from gradvar import executor  # noqa: E402
from gradvar.studies.compare import TIMING_COLUMNS  # noqa: E402


def sweep(cells, samples, scheduler=None, threads=None):
    """(seconds, results) of the mean-shift sweep."""
    t0 = time.perf_counter()
    results = gradvar.compare(
        estimator="sf",
        mu=f"-3:3:{cells}",
        samples=samples,
        scheduler=scheduler,
        threads=threads,
    )
    return time.perf_counter() - t0, results


def warm():
    """Run on every worker: load the kernels of the sweep (the on-disk cache)."""
    import gradvar as gv

    gv.compare(estimator="sf", mu="0", samples=1000)
    return os.getpid()


def cluster(workers):
    local = executor.local_cluster(workers)  # as --scheduler local:N starts it
    with distributed.Client(local, set_as_default=False) as client:
        client.run(warm)
    return local


def same(a, b):
    keep = [c for c in a.columns if c not in TIMING_COLUMNS]
    return a[keep].to_csv(index=False) == b[keep].to_csv(index=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 cells of n = 1e6")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (the fastest)")
    args = parser.parse_args()
    cells, samples = (16, 10**6) if args.quick else (64, 10**7)
    tiny = 4 * cells
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    sweep(2, 1000, threads=2)  # compile here
    print(f"sweep: {cells} cells of n = {samples:.0e} (sf, normal/quadratic), load {load()}")
    one, two = cluster(1), cluster(2)
    times = {"local": [], "two": [], "tiny1": [], "tiny2": []}
    try:
        for _ in range(args.repeat):  # interleaved, so a change of load hits every case
            t, local = sweep(cells, samples, threads=2)
            times["local"].append(t)
            t, remote = sweep(cells, samples, scheduler=two.scheduler_address)
            times["two"].append(t)
            assert same(local, remote), "the cluster's results differ from the local ones"
            times["tiny2"].append(sweep(tiny, 1000, scheduler=two.scheduler_address)[0])
            times["tiny1"].append(sweep(tiny, 1000, scheduler=one.scheduler_address)[0])
            print(
                "  run: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
                + f"; load {load()}"
            )
    finally:
        one.close()
        two.close()
    t_local, t_two, t1, t2 = (min(times[k]) for k in ("local", "two", "tiny1", "tiny2"))
    print(f"fastest of {args.repeat}:")
    print(f"  local, 2 engine threads:         {t_local:7.2f} s")
    print(f"  LocalCluster, 2 workers x 1:     {t_two:7.2f} s")
    print("  results.csv: identical apart from the timing columns")
    per_cell = (t_two - t_local) / cells
    print(
        f"  overhead per cell: {per_cell * 1e3:.1f} ms ({100 * per_cell:.2f}% of a 1-second "
        f"cell; cells here take {t_local / cells:.3f} s)"
    )
    o_w, o_s = 2 * (t1 - t2) / tiny, (2 * t2 - t1) / tiny
    print(f"\ntiny cells (n = 1000), {tiny} of them: 1 worker {t1:.2f} s, 2 workers {t2:.2f} s")
    print(
        f"  per-cell overhead (a truth task and one block): on the workers o_w = "
        f"{o_w * 1e3:.1f} ms, serial o_s = {o_s * 1e3:.1f} ms"
    )
    print("\nmodel: a sweep of 1000 cells of t = 1 s on W workers (negative parts taken as 0)")
    print("     W    T(W) s   speed-up  efficiency")
    for w in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        total = 1000 * ((1 + max(o_w, 0)) / w + max(o_s, 0))
        speedup = 1000 / total
        print(f"  {w:4d}  {total:8.1f}  {speedup:9.1f}  {speedup / w:9.0%}")


def load():
    return f"{os.getloadavg()[0]:.2f}"


if __name__ == "__main__":
    main()
