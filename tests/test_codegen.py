"""The generated kernel modules: the template lints clean, the digest covers every kernel
source, a Numba without the private internals falls back to the exact same numbers, and a
run packed as an engine Task gives the same numbers in a fresh process."""

import dataclasses
import hashlib
import importlib.util
import json
import linecache
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, make_cell, run_python

from gradvar import engine, spec, truth
from gradvar.kernels import codegen
from gradvar.model import registry

EST = registry.ESTIMATORS
PROJECT = Path(ROOT)


def _hexes(mom):
    """Everything a run produced, as exact float hex strings."""
    return dict(
        moments=[float(v).hex() for v in mom.moments.ravel()],
        groups=[float(v).hex() for v in mom.group_moments.ravel()],
        group_n=[int(v) for v in mom.group_n],
        n_finite=int(mom.n_finite),
        nonfinite=int(mom.nonfinite),
        aux=[float(v).hex() for v in np.ravel(mom.aux)],
    )


# --- the template ---------------------------------------------------------------------------
def _ruff():
    """The ruff command, or None when ruff is not installed."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


@pytest.mark.parametrize(
    "variant",
    [
        dict(shape=(2, 2), nrt_off=True, cache=True),  # small cell: literal sizes, stack scratch
        dict(shape=None, nrt_off=False, cache=False),  # the heap fallback, in memory
        dict(shape=(3, 3, 3), nrt_off=True, cache=True),  # sample blocking (categorical)
        dict(shape=(3, 3, 3), nrt_off=True, cache=True, lanes=True),  # lanes (categorical)
        dict(shape=(3, 3, 3), nrt_off=True, cache=True, lanes=True, expression=True),
    ],
    ids=["static", "dynamic", "blocked", "lanes", "lanes-by-lane-objective"],
)
def test_rendered_template_passes_ruff_check(tmp_path, variant):
    """The generated modules are never linted where they are written, so lint the template
    rendered for one combination with the project's ruff configuration."""
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    name = "categorical" if variant["shape"] and len(variant["shape"]) == 3 else "normal"
    fam = registry.FAMILIES[name]
    obj = registry.OBJECTIVES[(name, fam.default_objective)]
    if variant.pop("expression", False):  # an objective without a lane form
        obj = dataclasses.replace(obj, lanes=None)
    # sf-baseline runs on lanes on the categorical; st (no lane kernel) on the noise table
    est = EST["sf-baseline"] if variant.pop("lanes", False) or name == "normal" else EST["st"]
    text = codegen.render(fam, obj, est, key="0123456789ab", **variant)
    assert ("_est_lanes(" in text) == (est.name == "sf-baseline" and name == "categorical")
    assert ("def _obj_lanes(" in text) == (obj.lanes is None and "_est_lanes(" in text)
    path = tmp_path / "gradvar_generated.py"
    path.write_text(text)
    proc = subprocess.run(
        [*ruff, "check", "--no-cache", "--config", str(PROJECT / "pyproject.toml"), str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendered_variants_differ_only_where_they_should():
    fam = registry.FAMILIES["categorical"]
    obj = registry.OBJECTIVES[("categorical", "squared")]
    static = codegen.render(fam, obj, EST["gumbel-softmax"], (3, 3))
    dynamic = codegen.render(fam, obj, EST["gumbel-softmax"], None, nrt_off=False, cache=False)
    assert "_scratch(6, 3)" in static and "_nrt=False" in static and "cache=True" in static
    assert "_scratch(" not in dynamic and "scratch_array" not in dynamic
    assert "_nrt" not in dynamic and "cache=True" not in dynamic
    for name in ("def fill(", "def run_chunks(", "def pilot(", "def on_states("):
        assert name in static and name in dynamic
    # the moments come from the shared module of their P (literal) or of any P
    assert f"from {codegen.moments_name(3, '0' * 12)} import moments" in static
    assert f"from {codegen.moments_name(None, '0' * 12)} import moments" in dynamic
    literal, any_p = codegen.render_moments(3), codegen.render_moments(None, nrt_off=False)
    assert "_scratch(5, 63)" in literal and "_moments(buf, tab, mom, cnt, acc, 3)" in literal
    assert "scratch_array" not in any_p and "acc, buf.shape[1])" in any_p and "_nrt" not in any_p
    assert "def moments(" in literal and "def moments(" in any_p


@pytest.mark.parametrize("p", [3, None], ids=["literal", "any"])
def test_rendered_moments_module_passes_ruff_check(tmp_path, p):
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    path = tmp_path / "gradvar_moments.py"
    path.write_text(codegen.render_moments(p, key="0123456789ab"))
    cmd = [*ruff, "check", "--no-cache", "--config", str(PROJECT / "pyproject.toml"), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- sample blocking --------------------------------------------------------------------------
def test_family_noise_is_its_variates_in_order():
    """noise(c)[j] = variate(c S + j): the premise of drawing a block's noise in one loop."""
    from gradvar.kernels import jit

    jit.materialize()
    key = np.uint64(0x1234_5678_9ABC_DEF1)
    for fam in registry.FAMILIES.values():
        if fam.variate is None:
            continue
        cell = make_cell(fam.name, fam.default_objective)
        fp, size = cell.fp(), cell.family.state_size(cell.dim)
        state = np.empty(cell.width)
        for c in (0, 1, 7, 10**9):
            fam.noise.dispatcher(fp, key, c, state)
            flat = [fam.variate.dispatcher(fp, key, c * size + j) for j in range(size)]
            assert state[:size].tolist() == flat, (fam.name, c)


def test_compiled_without_a_shape_gives_the_dynamic_module():
    cell = make_cell("categorical", "squared")
    module = codegen.compiled(cell.family, cell.objective, EST["sf"], None)
    assert "_p" not in module.__name__.split("_sf_")[-1]


def test_which_kernels_block_their_samples():
    cat, normal = registry.FAMILIES["categorical"], registry.FAMILIES["normal"]
    assert codegen.blocks_samples(cat, EST["gumbel-softmax"])
    assert codegen.blocks_samples(registry.FAMILIES["multibernoulli"], EST["disarm"])
    assert not codegen.blocks_samples(normal, EST["sf"])  # no variate kernel
    assert not codegen.blocks_samples(cat, EST["gumbel-rao"])  # a stream of its own
    assert not codegen.blocks_samples(cat, EST["exact"])
    # rebar-tied has no stream, but its kernel is rebar's, which reads key for its own v
    assert not codegen.blocks_samples(registry.FAMILIES["bernoulli"], EST["rebar-tied"])
    from wrong_categorical import WRONG_ST  # a kernel from outside gradvar: never blocked

    assert not codegen.blocks_samples(cat, WRONG_ST)


def _fills(cell, est, batch, n, start=5, baseline="loo"):
    """fill's estimates through the blocked module and the plain one (same cell, batch)."""
    out = []
    for shape in (cell.shape, cell.shape[:2]):
        module = codegen.compiled(cell.family, cell.objective, est, shape)
        buf = np.empty((n, len(cell.coords)))
        aux = engine.estimator_aux(module, cell, est, baseline, 3, None)
        key = np.uint64(0xDEAD_BEEF_0000_0001)
        work = np.empty((est.work_rows, cell.width))
        module.fill(cell.fp(), cell.objp(), cell.opts(), aux, key, batch, start, work, buf)
        out.append(buf)
    return out


@pytest.mark.parametrize("batch", [1, 2, 3, 300])  # 300: more samples than a block holds
def test_blocked_fill_gives_the_plain_fill_bits(batch):
    """loo (batch >= 2) redraws each sample's noise (read twice from the table); the blocks
    (85 samples of 3 classes, 256 // 3) split neither n = 200 nor the batches evenly."""
    cell = make_cell("categorical", "squared", batch)
    est = EST["sf-baseline"] if batch > 1 else EST["sf"]
    blocked, plain = _fills(cell, est, batch, n=200)
    assert blocked.tobytes() == plain.tobytes()
    assert np.isfinite(blocked).all() and len(np.unique(blocked[:, 0])) > 1


def test_a_kernel_reading_a_sample_outside_its_block_gets_that_samples_noise(monkeypatch):
    """A (test) kernel that also reads sample c + 7919: blocked, that sample is not in the
    table and is drawn directly, the same bits as the plain fill (and no stray read)."""
    from wrong_categorical import WRONG_RAO

    monkeypatch.setattr(codegen, "blocks_samples", lambda family, estimator: True)
    cell = make_cell("categorical", "squared", 2)
    blocked, plain = _fills(cell, WRONG_RAO, 2, n=200)
    assert blocked.tobytes() == plain.tobytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    "family, est", [("categorical", "gumbel-softmax"), ("multibernoulli", "disarm")]
)
@pytest.mark.parametrize("batch", [1, 4])
def test_blocked_fill_gives_the_plain_fill_bits_for_more_kernels(family, est, batch):
    cell = make_cell(family, "squared", batch, logits=np.linspace(1.0, -1.0, 7))
    blocked, plain = _fills(cell, EST[est], batch, n=200)
    assert blocked.tobytes() == plain.tobytes()


# --- lanes -----------------------------------------------------------------------------------
def test_which_kernels_run_on_lanes():
    cat = registry.FAMILIES["categorical"]
    for name in ("sf", "sf-baseline", "gumbel-softmax", "st-gumbel"):
        assert codegen.uses_lanes(cat, EST[name]), name
    assert not codegen.uses_lanes(cat, EST["reinmax"])  # no lane kernel: the noise table
    assert not codegen.uses_lanes(registry.FAMILIES["multibernoulli"], EST["sf"])  # no forms
    assert not codegen.uses_lanes(registry.FAMILIES["normal"], EST["reparam"])
    assert [codegen.lane_count(w) for w in (2, 10, 11, 16)] == [64, 64, 56, 40]


def _lane_cells():
    """Cells whose lanes must give the bits of the samples one by one: an objective with a
    lane form and an expression run lane by lane, the extremes tau = 1e-3 and logits +-1e3
    (underflowing softmax terms), 17 classes (a heap fallback: never on lanes)."""
    expression = spec.objective_entry(registry.FAMILIES["categorical"], "(y[0] - 2*y[2])**2", ())
    return [
        make_cell("categorical", "squared", logits=np.linspace(1.0, -1.0, 10)),
        make_cell("categorical", "linear", logits=np.array([0.3, -0.2, 0.1])),
        make_cell("categorical", obj=expression, logits=np.array([0.2, -0.4, 0.9, 0.0])),
        make_cell("categorical", "squared", tau=1e-3, logits=np.array([1e3, -1e3, 0.0])),
    ]


_LANE_CASES = [  # (estimator, cell of _lane_cells()): each estimator and cell once, fast
    ("sf", 3),
    ("sf-baseline", 1),
    ("gumbel-softmax", 0),
    ("gumbel-softmax", 3),
    ("st-gumbel", 2),
]


@pytest.mark.parametrize(
    "est, which",
    _LANE_CASES
    + [
        pytest.param(est, which, marks=pytest.mark.slow)
        for est in ("sf", "sf-baseline", "gumbel-softmax", "st-gumbel")
        for which in range(4)
        if (est, which) not in _LANE_CASES
    ],
)
def test_lanes_give_the_bits_of_one_sample_at_a_time(est, which):
    """n = 150 from sample 5: two whole blocks of 64 lanes and a part block (sf-baseline with
    the mean baseline; leave-one-out needs batch >= 2, see test_blocked_fill_...)."""
    cell = _lane_cells()[which]
    assert codegen.uses_lanes(cell.family, EST[est])
    lanes, plain = _fills(cell, EST[est], 1, n=150, baseline="mean")
    assert lanes.tobytes() == plain.tobytes()
    assert which == 3 or len(np.unique(lanes[:, 0])) > 1  # at logits +-1e3 sf's are all 0


def test_a_lane_kernel_summing_in_another_order_is_caught():
    """The deliberately wrong twin: gumbel-softmax's lanes with the softmax denominator summed
    from the last class down, the same distribution to the last bits, and the bit-for-bit check
    above rejects it."""
    from wrong_categorical import WRONG_GS_LANES

    cell = _lane_cells()[0]
    wrong, plain = _fills(cell, WRONG_GS_LANES, 1, n=150)
    assert wrong.tobytes() != plain.tobytes()
    np.testing.assert_allclose(wrong, plain, rtol=1e-12, atol=1e-12)


def test_an_objective_run_lane_by_lane_gets_a_module_of_its_own():
    """The same objective with and without its lane form (an override, a plugin's copy) is two
    combinations: the one without is served the module with the column-by-column adapter (a
    name of its own, not the other's file rewritten), and both give the one-sample bits."""
    cell = _lane_cells()[1]
    by_lane = make_cell(
        "categorical",
        obj=dataclasses.replace(cell.objective, lanes=None),
        logits=cell.family_values["logits"],
    )
    own = codegen.compiled(cell.family, cell.objective, EST["sf"], cell.shape)
    adapted = codegen.compiled(by_lane.family, by_lane.objective, EST["sf"], by_lane.shape)
    assert own is not adapted and own.__name__ != adapted.__name__
    for module, adapter in ((own, False), (adapted, True)):
        text = "".join(linecache.getlines(module.__file__))
        assert ("def _obj_lanes(" in text) == adapter, module.__name__
    lanes, plain = _fills(by_lane, EST["sf"], 1, n=150, baseline="mean")
    assert (
        lanes.tobytes()
        == plain.tobytes()
        == _fills(cell, EST["sf"], 1, n=150, baseline="mean")[0].tobytes()
    )


# --- the digest ------------------------------------------------------------------------------
def test_digest_covers_every_kernel_source_by_glob_and_the_option_names(tmp_path, monkeypatch):
    """A new helper module under kernels/ or model/ (not in any list), an edit to the engine,
    another Numba version and another option order each give another digest."""
    package = tmp_path / "gradvar"
    for sub in ("kernels", "model"):
        shutil.copytree(PROJECT / "gradvar" / sub, package / sub)
    shutil.copy(PROJECT / "gradvar" / "engine.py", package / "engine.py")
    monkeypatch.setattr(codegen, "_PACKAGE", str(package))

    def fresh():
        monkeypatch.setattr(codegen, "_HASHED", {})
        return codegen.digest("gradvar.model.estimators")

    base = fresh()
    assert fresh() == base
    (package / "kernels" / "special.py").write_text("# a helper kernels call\n")
    with_helper = fresh()
    (package / "model" / "extra.py").write_text("# another\n")
    with_model = fresh()
    (package / "engine.py").write_text((package / "engine.py").read_text() + "\n# edited\n")
    edited = fresh()
    assert len({base, with_helper, with_model, edited}) == 4

    import numba

    monkeypatch.setattr(numba, "__version__", numba.__version__ + ".post1")
    assert fresh() != edited
    monkeypatch.undo()
    monkeypatch.setattr(codegen, "_HASHED", {})
    real = codegen.digest()
    options = dict(registry.OPTIONS)
    monkeypatch.setattr(registry, "OPTIONS", {"rao_samples": None, **options})
    import gradvar.model

    monkeypatch.setattr(gradvar.model, "OPTIONS", registry.OPTIONS)
    assert codegen.digest() != real


# --- a Numba without the private internals --------------------------------------------------
_FALLBACK_JOBS = [
    # (family, objective, estimator, baseline, batch, values): static shapes, a pilot, loo
    ("normal", "quadratic", "sf", "mean", 1, {"mu": 0.7, "sigma": 1.6}),
    ("normal", "cosine", "sf-baseline", "optimal", 1, {"mu": 0.3}),
    ("categorical", "squared", "gumbel-softmax", "mean", 1, {"logits": [0.5, -0.5, 0.3]}),
    ("bernoulli", "squared", "sf-baseline", "loo", 2, {"logit": 1.0}),
]
_FALLBACK_N = 20_003

_FALLBACK_SCRIPT = """
import contextlib, io, json, sys
from gradvar.kernels import codegen, jit

# what a newer Numba would do: reject the private option, and have moved the internals the
# stack-scratch intrinsic is built from
jit.NRT_OFF = {{"_nrt_removed_in_numba_9": False}}


def moved():
    raise ImportError("cannot import name 'make_array' from 'numba.np.arrayobj'")


jit._make_scratch_intrinsic = moved
err = io.StringIO()
with contextlib.redirect_stderr(err):
    found = codegen.features()
    from helpers import make_cell
    from test_codegen import _hexes
    from gradvar import engine, spec, truth
    from gradvar.model import registry
    runs, names = [], []
    for family, objective, est, baseline, batch, values in json.loads({jobs!r}):
        cell = make_cell(family, objective, batch=batch, **values)
        e = registry.ESTIMATORS[est]
        mom = engine.simulate(cell, e, {n}, 11, baseline=baseline,
                              exact_grad=truth.exact_gradient(cell))
        exact_var = truth.exact_moments(cell, e, baseline)[1]
        runs.append(dict(_hexes(mom), exact_var=[float(v).hex() for v in exact_var]))
        module = codegen.compiled(cell.family, cell.objective, e, cell.shape)
        names.append(module.__name__)
print(json.dumps(dict(features=[found.nrt_off, found.stack_scratch], runs=runs, names=names,
                      stderr=err.getvalue())))
"""


@pytest.mark.slow  # a fresh interpreter compiling every fallback: ~30 s
def test_numba_without_the_private_internals_falls_back_to_the_same_numbers(tmp_path):
    """If ``_nrt=False`` or the stack-scratch intrinsic fail (a newer Numba), the kernels are
    compiled without them, after one note each, and give the same moments bit for bit."""
    here = codegen.features()
    tmp_cache = tmp_path / "cache"  # the subprocess's; this process uses the usual cache
    code = _FALLBACK_SCRIPT.format(jobs=json.dumps(_FALLBACK_JOBS), n=_FALLBACK_N)
    out = json.loads(run_python(code, env={"GRADVAR_CACHE_DIR": str(tmp_cache)}).splitlines()[-1])
    assert out["features"] == [False, False]
    notes = out["stderr"].splitlines()
    assert len(notes) == 2, notes
    assert "_nrt_removed_in_numba_9=False does not work" in notes[0]
    assert "stack-scratch intrinsic does not work" in notes[1] and "make_array" in notes[1]
    assert all("same numbers" in line for line in notes)
    assert not any(re.search(r"_p\d+w\d+_", name) for name in out["names"])  # no literal shape
    files = [p for p in (tmp_cache / "kernels").glob("gradvar_*.py") if "probe" not in p.name]
    shared = [p for p in files if p.name.startswith("gradvar_moments_")]
    generated = [p for p in files if p not in shared]
    assert not list((tmp_cache / "kernels").glob("gradvar_features_*"))  # failures: no record
    assert len(generated) == len(_FALLBACK_JOBS)
    assert [p.name.startswith("gradvar_moments_dynamic_") for p in shared] == [True]  # any P
    for path in files:
        assert "_nrt" not in path.read_text() and "scratch_array" not in path.read_text()
    for (family, objective, est, baseline, batch, values), theirs in zip(
        _FALLBACK_JOBS, out["runs"], strict=True
    ):
        cell = make_cell(family, objective, batch=batch, **values)
        exact_grad = truth.exact_gradient(cell)
        mom = engine.simulate(cell, EST[est], _FALLBACK_N, 11, baseline, exact_grad)
        exact_var = truth.exact_moments(cell, EST[est], baseline)[1]
        ours = dict(_hexes(mom), exact_var=[float(v).hex() for v in exact_var])
        # quadrature sums over 1e5 nodes (three-class relaxed) may differ in the last digits
        theirs_var = [float.fromhex(v) for v in theirs.pop("exact_var")]
        np.testing.assert_allclose(exact_var, theirs_var, rtol=1e-12)
        ours.pop("exact_var")
        assert ours == theirs, (family, objective, est)
    assert here == codegen.Features()  # this Numba has both: the comparison was not vacuous


# --- engine.Task: a run as plain data ----------------------------------------------------------
_TASK_SCRIPT = """
import json, pickle
from test_codegen import _hexes
tasks = pickle.loads(bytes.fromhex({blob!r}))
print(json.dumps([_hexes(task.run()) for task in tasks]))
"""


def _run_tasks_elsewhere(tasks, env=None):
    blob = pickle.dumps(tasks).hex()
    return json.loads(run_python(_TASK_SCRIPT.format(blob=blob), env=env).splitlines()[-1])


def test_pickled_task_in_a_fresh_process_gives_the_moments_of_simulate():
    cases = [
        (make_cell("normal", "quadratic", mu=0.7, sigma=1.6), "sf-baseline", "optimal"),
        (make_cell("categorical", "squared", tau=0.3, logits=[0.5, -0.5, 0.3]), "st-gumbel", None),
        (make_cell("bernoulli", "squared", batch=2, logit=1.0), "sf-baseline", "loo"),
        (make_cell("normal", "cosine", mu=0.2), "exact", None),
    ]
    tasks, here = [], []
    for cell, est, baseline in cases:
        exact_grad = truth.exact_gradient(cell)
        tasks.append(engine.Task.from_cell(cell, EST[est], 30_001, 5, baseline, exact_grad))
        here.append(_hexes(engine.simulate(cell, EST[est], 30_001, 5, baseline, exact_grad)))
    task = tasks[0]
    assert task.family == "normal" and task.estimator == "sf-baseline" and task.n == 30_001
    assert isinstance(task.family_values["mu"], float)
    assert tasks[1].family_values["logits"] == (0.5, -0.5, 0.3)  # plain values, no arrays
    assert pickle.loads(pickle.dumps(task)) == task
    assert _run_tasks_elsewhere(tasks) == here


_PLUGIN = '''
"""A plugin: an estimator registered outside gradvar."""

from gradvar.kernels.jit import kernel
from gradvar.kernels.layout import STATE, S, V, X
from gradvar.model.registry import estimator

noise = score = path = vjp = obj = None  # bound per combination by the engine


@estimator("gv-task-halved-sf", "half the score function", "f(x) dlogp(x) / 2", requires="score")
@kernel
def gv_task_halved_sf(fp, objp, opts, aux, key, counter0, batch, work, g):
    x, st, v, s = work[X], work[STATE], work[V], work[S]
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)
        score(fp, st, x, s)
        f = obj(x, objp, v)
        for j in range(g.shape[0]):
            g[j] += 0.5 * f * s[j]
    for j in range(g.shape[0]):
        g[j] /= batch
'''


@pytest.fixture
def registries_restored():
    """Registries as they were before the test (a plugin registers entries)."""
    saved = {table: dict(getattr(registry, table)) for table in ("ESTIMATORS", "OBJECTIVES")}
    yield
    for table, entries in saved.items():
        getattr(registry, table).clear()
        getattr(registry, table).update(entries)


def test_task_carries_its_plugin_to_a_process_that_never_saw_it(tmp_path, registries_restored):
    path = tmp_path / "gv_task_plugin.py"
    path.write_text(_PLUGIN)
    spec = importlib.util.spec_from_file_location("gv_task_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gv_task_plugin"] = module
    spec.loader.exec_module(module)
    est = EST["gv-task-halved-sf"]
    cell = make_cell("normal", "quadratic", mu=0.7, sigma=1.6, k=-0.5)
    task = engine.Task.from_cell(cell, est, 20_000, 3, plugins=[path])
    [(name, text, sha)] = task.plugins
    assert name == "gv_task_plugin.py" and text == _PLUGIN
    assert sha == hashlib.sha256(_PLUGIN.encode()).hexdigest()
    here = engine.simulate(cell, est, 20_000, 3)
    sf = engine.simulate(cell, EST["sf"], 20_000, 3)
    assert np.array_equal(here.moments[:, 0], 0.5 * sf.moments[:, 0])  # the plugin's kernel ran
    assert _hexes(task.run()) == _hexes(here)  # loaded here already: not imported twice
    path.unlink()  # the other process gets the plugin from the task alone
    assert _run_tasks_elsewhere([task]) == [_hexes(here)]


def test_task_refuses_a_plugin_whose_source_does_not_match_its_hash(tmp_path):
    cell = make_cell("normal", "quadratic")
    task = engine.Task.from_cell(cell, EST["sf"], 100, 0)
    name, text, sha = "gv_evil.py", "raise SystemExit('imported')\n", "0" * 64
    forged = engine.Task(**{**task.__dict__, "plugins": ((name, text, sha),)})
    with pytest.raises(ValueError, match="does not match its sha256"):
        forged.run()
    assert not any("gv_evil" in m for m in sys.modules)
    bad_name = ("../gv_evil.py", text, hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(ValueError, match="not the file name of a Python module"):
        engine.Task(**{**task.__dict__, "plugins": (bad_name,)}).run()


def test_task_refuses_entries_that_are_not_registered():
    import wrong_estimators as wrong

    cell = make_cell("normal", obj=wrong.INF_ABOVE)
    with pytest.raises(ValueError, match="objective .* is not the registered entry"):
        engine.Task.from_cell(cell, EST["sf"], 100, 0)


def test_task_chunk_ranges_over_whole_groups_merge_into_the_full_run_bit_for_bit():
    cell = make_cell("normal", "quadratic", mu=0.7, sigma=1.6)
    n = 100_003
    full = engine.simulate(cell, EST["sf-baseline"], n, 8, "optimal")
    groups = engine.group_chunks(n, len(cell.coords))
    assert groups[0][0] == 0 and groups[-1][1] == engine.chunking(n, 2)[1]
    cut = groups[len(groups) // 3][0]
    parts = [
        engine.Task.from_cell(cell, EST["sf-baseline"], n, 8, "optimal", chunks=span).run()
        for span in ((0, cut), (cut, groups[-1][1]))
    ]
    assert sum(p.n_finite for p in parts) == n
    assert _hexes(engine.merge(parts)) == _hexes(full)
    with pytest.raises(ValueError, match="not a range"):
        engine.simulate(cell, EST["sf"], n, 8, chunks=(0, 10**6))


_FEATURES_SCRIPT = """
import json, sys
from gradvar.kernels import codegen
found = codegen.features()
probes = sorted(m for m in sys.modules if m.startswith("gradvar_probe_"))
print(json.dumps([found.nrt_off, found.stack_scratch, probes]))
"""


def test_the_features_are_recorded_once_probed_and_read_back(tmp_path):
    """The first process probes and records the features; the next reads the record and
    loads no probe; a damaged record is probed (and recorded) again."""
    env = {"GRADVAR_CACHE_DIR": str(tmp_path)}

    def started():
        return json.loads(run_python(_FEATURES_SCRIPT, env=env).splitlines()[-1])

    first = started()
    assert first[:2] == [True, True] and len(first[2]) == 2  # both probes loaded
    (record,) = (tmp_path / "kernels").glob("gradvar_features_*.txt")
    assert started() == [True, True, []]
    record.write_text("nrt_off\n")  # damaged: a probe missing
    assert started() == first
    assert sorted(record.read_text().split()) == ["nrt_off", "stack_scratch"]
    record.write_bytes(b"\xff\xfe\x00")  # damaged: not even text
    assert started() == first
    assert sorted(record.read_text().split()) == ["nrt_off", "stack_scratch"]


# --- the moments the engine runs -------------------------------------------------------------
@pytest.mark.parametrize(
    "family, objective, values, est, n, static",
    [
        ("normal", "quadratic", {}, "sf", 32 * 1000 + 77, True),  # P = 2, a short last chunk
        ("normal", "quadratic", {}, "reparam", 5001, False),  # the heap variant
        ("categorical", "squared", {"logits": np.zeros(3)}, "sf", 20013, True),  # P = 3, blocked
        ("multibernoulli", "squared", {"logits": np.zeros(20)}, "sf", 3333, True),  # P = 20: heap
        ("normal", "quadratic", {"sigma": 1e-320}, "sf", 3000, True),  # all non-finite
    ],
    ids=["normal-p2", "normal-heap", "categorical-p3", "multibernoulli-p20", "nonfinite"],
)
def test_run_chunks_moments_are_those_of_the_chunks_estimates(
    family, objective, values, est, n, static
):
    """Each chunk's moments from ``run_chunks`` (the inlined kernel the engine runs, its
    scratch on the stack, or the heap variant) are, bit for bit, those that
    moments.chunk_moments (checked against the documented order in test_stats.py) gives
    for the chunk's estimates from ``fill``."""
    from gradvar.kernels import moments, rng

    cell = make_cell(family, objective, **values)
    estimator, p = EST[est], len(cell.coords)
    shape = cell.shape if static else None
    module = codegen.compiled(cell.family, cell.objective, estimator, shape)
    size, nchunks = engine.chunking(n, p)
    key, aux = rng.stream_key(3, rng.MAIN), np.zeros(1 + p)
    mom, cnt = np.empty((nchunks, p, 4)), np.empty((nchunks, 2), dtype=np.int64)
    head = (cell.fp(), cell.objp(), cell.opts(), aux, key, 1)
    with np.errstate(all="ignore"):
        module.run_chunks(
            *head, n, size, 0, nchunks, 0, *engine.chunk_scratch(estimator, cell, size), mom, cnt
        )
        for c in range(nchunks):
            buf = np.empty((min(size, n - c * size), p))
            module.fill(*head, c * size, np.empty((estimator.work_rows, cell.width)), buf)
            want, want_cnt = np.empty((p, 4)), np.empty(2, dtype=np.int64)
            moments.chunk_moments(buf.T.copy(), want, want_cnt)
            assert want.tobytes() == mom[c].tobytes() and list(want_cnt) == list(cnt[c]), c
    assert nchunks > 1 and n % size != 0
