#!/usr/bin/env python
"""Another checkout (today's main) against this one, one benchmark alternating (not a test).

    python benchmarks/ab.py --base ../wt-main --rounds 4 -- gumbel_rao.py --n 1e6 --repeat 1
    python benchmarks/ab.py --base ../wt-main -- engine.py --quick --skip normal,memory,compile

Runs this checkout's ``benchmarks/SCRIPT ARGS --json`` once per checkout to compile (not
counted), then ``--rounds`` times each, alternating base and this checkout, with the base's
gradvar on the path (``GRADVAR_CHECKOUT``) and a kernel cache folder per checkout.  Prints,
per case, the best rate of each checkout over the rounds, their ratio, and the load average
seen; rates of NumPy references (labels with "numpy") measure the machine's drift between
the two.  Prefix ``taskset -c N`` to pin everything to one core.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(script, args, checkout, cache):
    env = {**os.environ, "GRADVAR_CHECKOUT": checkout, "GRADVAR_CACHE_DIR": cache}
    cmd = [sys.executable, os.path.join(HERE, script), *args, "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {checkout}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1]), os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other checkout (e.g. a worktree of main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("script", help="a benchmark in benchmarks/ that takes --json")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    checkouts = {"base": os.path.abspath(a.base), "this": os.path.dirname(HERE)}
    best, loads = {"base": {}, "this": {}}, []
    with tempfile.TemporaryDirectory(prefix="gradvar-ab-") as tmp:
        caches = {name: os.path.join(tmp, name) for name in checkouts}
        for name, path in checkouts.items():  # compile both outside the rounds
            run(a.script, args, path, caches[name])
        for _ in range(a.rounds):
            for name, path in checkouts.items():
                rates, load = run(a.script, args, path, caches[name])
                loads.append(load)
                for label, rate in rates.items():
                    best[name][label] = max(rate, best[name].get(label, 0.0))
    print(
        f"{a.script} {' '.join(args)}: best of {a.rounds} alternating rounds; load average "
        f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    print(f"  {'case':<44} {'base M/s':>10} {'this M/s':>10} {'this/base':>10}")
    for label, rate in best["this"].items():
        old = best["base"].get(label)
        ratio = f"{rate / old:9.2f}x" if old else "         -"
        shown = f"{old / 1e6:10.3f}" if old else "         -"
        print(f"  {label:<44} {shown} {rate / 1e6:10.3f} {ratio}")


if __name__ == "__main__":
    main()
