"""The engine's guarantees: determinism (threads, co-running estimators, block size), pure
Python == jitted, bounded memory, non-finite estimates counted, and a correct kernel cache."""

import json
import textwrap

import numpy as np
import pytest
import wrong_estimators as wrong
from helpers import make_cell, run_python

import gradvar
from gradvar import engine, stats, truth
from gradvar.kernels import rng
from gradvar.model import registry
from gradvar.studies.compare import TIMING_COLUMNS

EST = registry.ESTIMATORS

# (family, objective, estimator, baseline, batch, cell values): every family and estimator kind
JOBS = [
    ("normal", "quadratic", "sf", "mean", 1, {"mu": 0.7, "sigma": 1.6, "k": -0.5}),
    ("normal", "quadratic", "sf-baseline", "optimal", 1, {"mu": 0.7, "sigma": 1.6}),
    ("normal", "cosine", "sf-baseline", "loo", 2, {"mu": 0.7, "omega": 2.0}),
    ("normal", "quadratic", "reparam", "mean", 3, {"sigma": 0.5}),
    ("categorical", "squared", "gumbel-softmax", "mean", 1, {"logits": [0.5, -0.5, 0.3]}),
    ("categorical", "squared", "st-gumbel", "mean", 1, {}),
    # its own stream, K' = 17 draws in two blocks of its scratch rows (the last one short)
    ("categorical", "squared", "gumbel-rao", "mean", 1, {"options": {"rao_samples": 17.0}}),
    ("bernoulli", "squared", "sf-baseline", "mean", 1, {"logit": 1.0}),
]

_SCRIPT = """
import json, sys
import numpy as np
import numba
sys.path.insert(0, {tests!r})
from helpers import make_cell
from gradvar import engine, truth
from gradvar.model import registry
out = []
for family, objective, est, baseline, batch, values in json.loads({jobs!r}):
    cell = make_cell(family, objective, batch=batch, **values)
    mom = engine.simulate(cell, registry.ESTIMATORS[est], {n}, {seed}, baseline=baseline,
                          exact_grad=truth.exact_gradient(cell))
    out.append(dict(moments=[float(v).hex() for v in mom.moments.ravel()],
                    groups=[float(v).hex() for v in mom.group_moments.ravel()],
                    group_n=mom.group_n.tolist(), n_finite=mom.n_finite,
                    nonfinite=mom.nonfinite, aux=[float(v).hex() for v in mom.aux.ravel()]))
print(json.dumps(dict(threads=numba.get_num_threads(), runs=out)))
"""


def _engine_in_subprocess(env, n, seed=7):
    from helpers import TESTS_DIR

    code = _SCRIPT.format(tests=TESTS_DIR, jobs=json.dumps(JOBS), n=n, seed=seed)
    return json.loads(run_python(code, env=env).strip().splitlines()[-1])


def _engine_here(n, seed=7):
    runs = []
    for family, objective, est, baseline, batch, values in JOBS:
        cell = make_cell(family, objective, batch=batch, **values)
        mom = engine.simulate(
            cell, EST[est], n, seed, baseline=baseline, exact_grad=truth.exact_gradient(cell)
        )
        runs.append(
            dict(
                moments=[float(v).hex() for v in mom.moments.ravel()],
                groups=[float(v).hex() for v in mom.group_moments.ravel()],
                group_n=mom.group_n.tolist(),
                n_finite=mom.n_finite,
                nonfinite=mom.nonfinite,
                aux=[float(v).hex() for v in mom.aux.ravel()],
            )
        )
    return runs


def test_one_thread_equals_two_threads_bit_for_bit():
    n = 100_003  # 32 chunks of 3126: both threads get work, the last chunk is short
    one = _engine_in_subprocess({"NUMBA_NUM_THREADS": "1"}, n)
    two = _engine_in_subprocess({"NUMBA_NUM_THREADS": "2"}, n)
    assert (one["threads"], two["threads"]) == (1, 2)
    for job, a, b in zip(JOBS, one["runs"], two["runs"], strict=False):
        assert a == b, job
    assert one["runs"] == _engine_here(n)  # and the test process (default threads) agrees


@pytest.mark.slow
def test_one_thread_equals_two_threads_large_slow():
    n = 10_000_019  # 611 chunks, three blocks of chunks
    one = _engine_in_subprocess({"NUMBA_NUM_THREADS": "1"}, n)
    two = _engine_in_subprocess({"NUMBA_NUM_THREADS": "2"}, n)
    assert one["runs"] == two["runs"]


def test_pure_python_smoke_equals_jit():
    """Under NUMBA_DISABLE_JIT=1 every kernel runs as Python (what a traceback or debugger
    sees) and gives the same numbers, bit for bit."""
    n = 97
    nojit = _engine_in_subprocess({"NUMBA_DISABLE_JIT": "1"}, n)
    assert nojit["runs"] == _engine_here(n)


def test_same_seed_same_table_except_timing():
    """REFERENCE section 6: the same command and seed give the same results, apart from the
    columns that measure time (api.TIMING_COLUMNS)."""
    kw = dict(estimator="sf,sf-baseline,reparam,exact", objective="cosine", samples=20_000, seed=3)
    first, second = gradvar.compare(**kw), gradvar.compare(**kw)
    cols = [c for c in first.columns if c not in TIMING_COLUMNS]
    assert first[cols].equals(second[cols])


def test_estimator_results_do_not_depend_on_co_running_estimators():
    kw = dict(objective="quadratic", mu="0.7,-1", sigma=1.6, samples=30_001, seed=3)
    alone = gradvar.compare(estimator="sf", **kw)
    together = gradvar.compare(estimator="reparam,sf-baseline,exact,sf", **kw)
    together = together[together.estimator == "sf"].reset_index(drop=True)
    cols = [c for c in alone.columns if c not in TIMING_COLUMNS]
    assert alone[cols].equals(together[cols])
    kw = dict(family="categorical", samples=20_000, seed=3, batch=2, baseline="loo")
    alone = gradvar.compare(estimator="sf-baseline", **kw)
    together = gradvar.compare(estimator="gumbel-softmax,sf-baseline,sf", **kw)
    together = together[together.estimator == "sf-baseline"].reset_index(drop=True)
    cols = [c for c in alone.columns if c not in TIMING_COLUMNS]
    assert alone[cols].equals(together[cols])


def test_common_random_numbers():
    """Estimators in a cell see the same noise.  On f = z at mu = 0, sigma = 1 estimate i of
    reparam's d/dsigma is eps_i and of sf's d/dmu is eps_i^2, so the mean of sf's must be
    (sum of squares of reparam's) / n, to rounding; another seed gives other noise."""
    cell = make_cell("normal", "linear", mu=0.0, sigma=1.0, a=1.0)
    rp = engine.simulate(cell, EST["reparam"], 20_000, seed=9)
    sf = engine.simulate(cell, EST["sf"], 20_000, seed=9)
    # reparam sigma coordinate: eps_i; sf mu coordinate: eps_i^2, so mean(sf) = M2 / n + mean^2
    eps_mean, eps_m2 = rp.moments[1, 0], rp.moments[1, 1]
    assert sf.moments[0, 0] == pytest.approx(eps_m2 / 20_000 + eps_mean**2, rel=1e-12)
    other = engine.simulate(cell, EST["sf"], 20_000, seed=10)
    assert other.moments[0, 0] != pytest.approx(sf.moments[0, 0], rel=1e-6)


def _moments_equal(a, b):
    return (
        a.n_finite == b.n_finite
        and a.nonfinite == b.nonfinite
        and np.array_equal(a.moments, b.moments)
        and np.array_equal(a.group_moments, b.group_moments)
        and np.array_equal(a.group_n, b.group_n)
    )


@pytest.mark.parametrize("block", [1, 7])
def test_results_do_not_depend_on_block_size(monkeypatch, block):
    cell = make_cell("normal", "quadratic", mu=0.7, sigma=1.6)
    for n in (1, 31, 100_003):
        reference = engine.simulate(cell, EST["sf"], n, seed=4)
        monkeypatch.setattr(engine, "BLOCK_CHUNKS", block)
        seen = []
        mom = engine.simulate(cell, EST["sf"], n, seed=4, progress=seen.append)
        monkeypatch.undo()
        assert _moments_equal(mom, reference), n
        assert sum(seen) == n and all(k > 0 for k in seen)


def test_seed_determinism():
    cell = make_cell("categorical", "squared")
    a = engine.simulate(cell, EST["sf"], 10_000, seed=1)
    b = engine.simulate(cell, EST["sf"], 10_000, seed=1)
    c = engine.simulate(cell, EST["sf"], 10_000, seed=2)
    assert _moments_equal(a, b) and not _moments_equal(a, c)


def test_chunking_depends_on_n_only():
    for n in (1, 2, 31, 32, 33, 10**5, 10**9 + 7):
        size, count = engine.chunking(n)
        assert size * count >= n > size * (count - 1)
        assert size <= engine.CHUNK_MAX


# --- memory ------------------------------------------------------------------------------------
def test_memory_does_not_grow_with_n():
    """n = 10^7 estimates allocate nothing proportional to n: the peak resident set grows by
    less than 30 MB over an n = 10^5 run (one float64 per estimate and coordinate would be
    160 MB)."""
    code = textwrap.dedent("""
        import resource, tracemalloc
        from helpers import make_cell
        from gradvar import engine
        from gradvar.model import registry
        cell = make_cell("normal", "quadratic", mu=0.7, sigma=1.6)
        est = registry.ESTIMATORS["reparam"]
        engine.simulate(cell, est, 10 ** 5, 0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        mom = engine.simulate(cell, est, 10 ** 7, 0)
        peak = tracemalloc.get_traced_memory()[1]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(mom.n_finite, (after - before) * 1024, peak)
    """)
    n, rss_growth, traced_peak = map(int, run_python(code).split())
    assert n == 10**7
    assert rss_growth < 30e6, f"resident set grew by {rss_growth / 1e6:.0f} MB"
    assert traced_peak < 5e6, f"Python/NumPy allocations peaked at {traced_peak / 1e6:.0f} MB"


# --- non-finite estimates -------------------------------------------------------------------------
def _normal_draws(seed, count, batch):
    """eps of the samples the engine draws: counter c -> estimate c // batch."""
    import numba

    from gradvar.kernels.jit import materialize

    materialize()
    normal = rng.normal

    @numba.njit
    def fill(key, zig, out):
        for c in range(out.shape[0]):
            out[c] = normal(key, c, zig)

    out = np.empty(count * batch)
    fill(rng.stream_key(seed, rng.MAIN), rng.ZIGGURAT, out)
    return out.reshape(count, batch)


@pytest.mark.parametrize("est,batch", [("reparam", 1), ("sf", 3)])
def test_nonfinite_estimates_are_counted_not_dropped_silently(est, batch):
    n, seed, mu, sigma, c = 20_000, 5, 0.2, 1.1, 1.5
    cell = make_cell("normal", obj=wrong.INF_ABOVE, batch=batch, mu=mu, sigma=sigma, c=c)
    mom = engine.simulate(cell, EST[est], n, seed)
    eps = _normal_draws(seed, n, batch)
    bad = np.any(mu + sigma * eps > c, axis=1)  # an estimate is non-finite if any sample is
    assert 0 < bad.sum() < n
    assert mom.nonfinite == bad.sum() and mom.n_finite == n - bad.sum()
    assert mom.group_n.sum() == mom.n_finite
    # the moments are those of the finite estimates alone (not zero-filled, not NaN)
    if est == "reparam":  # g = (1, eps) below c
        good = eps[~bad, 0]
        assert mom.moments[0, 0] == 1.0 and mom.moments[0, 1] == 0.0
        assert mom.moments[1, 0] == pytest.approx(good.mean(), rel=1e-12)
        assert mom.moments[1, 1] == pytest.approx(((good - good.mean()) ** 2).sum(), rel=1e-10)
    assert np.all(np.isfinite(mom.moments))
    st = stats.coordinate_stats(mom, [1.0, 0.0], [0.0, 1.0])
    assert np.all(np.isfinite(st["grad_mean"])) and np.all(np.isfinite(st["grad_var"]))


# --- the kernel cache -----------------------------------------------------------------------------
_PLUGIN = """
from gradvar.kernels.jit import kernel
from gradvar.model.registry import Estimator

noise = score = path = vjp = obj = None


@kernel
def plugin_constant(fp, objp, opts, aux, key, counter0, batch, work, g):
    for j in range(g.shape[0]):
        g[j] = {value}


EST = Estimator("plugin", "constant", "c", plugin_constant, requires="score")
"""


def test_edited_external_kernel_is_not_served_stale(tmp_path):
    """An estimator defined outside gradvar (a plugin, a test) and then edited must not be
    served from the on-disk cache compiled from its old source."""
    (tmp_path / "gv_plugin_module.py").write_text(_PLUGIN.format(value="1.0"))
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from helpers import make_cell
        from gradvar import engine
        import gv_plugin_module
        cell = make_cell("normal", "linear")
        print(engine.simulate(cell, gv_plugin_module.EST, 10, 0).moments[0, 0])
    """)
    env = {"GRADVAR_CACHE_DIR": str(tmp_path / "cache")}
    assert float(run_python(code, env=env)) == 1.0
    (tmp_path / "gv_plugin_module.py").write_text(_PLUGIN.format(value="2.0"))
    assert float(run_python(code, env=env)) == 2.0


def test_tau_free_estimators_run_once_per_tau_sweep(monkeypatch):
    """In a tau sweep sf runs once and has one row per coordinate, tau empty (REFERENCE 6b)."""
    import gradvar
    from gradvar import engine

    calls = []
    real = engine.simulate

    def counting(cell, est, *args, **kwargs):
        calls.append(est.name)
        return real(cell, est, *args, **kwargs)

    monkeypatch.setattr(engine, "simulate", counting)
    df = gradvar.compare(
        family="categorical", estimator="sf,gumbel-softmax", tau="0.1,0.5,1", samples=2000
    )
    assert calls.count("sf") == 1 and calls.count("gumbel-softmax") == 3
    sf = df[df["estimator"] == "sf"]
    assert len(sf) == 3 and sf.tau.isna().all()  # one row per logit
    assert len(df[df["estimator"] == "gumbel-softmax"]) == 9


_TIMED = """
import time
import numba
from numba.core.registry import CPUDispatcher
from helpers import make_cell
from gradvar import engine, truth
from gradvar.kernels import codegen, moments
from gradvar.model import registry

cell = make_cell({family!r}, {objective!r})
est = registry.ESTIMATORS[{estimator!r}]
generated = codegen.compiled(cell.family, cell.objective, est, cell.shape)

def compiled_now():
    return {{(m.__name__, name): len(d.overloads) for m in (moments, generated)
            for name, d in vars(m).items() if isinstance(d, CPUDispatcher)}}

marks = []
real = time.perf_counter
def marking():
    marks.append(compiled_now())
    return real()
engine.time.perf_counter = marking
engine.simulate(cell, est, 1000, 1, baseline={baseline!r}, exact_grad=truth.exact_gradient(cell))
start, end = marks
assert start == end, "compiled or loaded inside the timed region: " + repr(
    [k for k in end if end[k] != start.get(k)])
assert start[(moments.__name__, "merge_chunks")] == 1
print("ok")
"""


@pytest.mark.parametrize(
    "family, objective, estimator, baseline",
    [("normal", "quadratic", "sf", "mean"), ("normal", "quadratic", "sf-baseline", "optimal")],
)
def test_nothing_compiles_inside_the_timed_region(family, objective, estimator, baseline):
    """``seconds`` (and so estimates/s) times the estimates only: in a fresh process every
    kernel the run calls is compiled or loaded before the clock starts (the first estimator
    of a cold-cache compare reported 0.3 M/s instead of 140 M/s: merge_chunks compiled
    inside)."""
    code = _TIMED.format(family=family, objective=objective, estimator=estimator, baseline=baseline)
    assert run_python(code).strip().endswith("ok")
