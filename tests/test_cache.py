"""A broken kernel cache never breaks a run: an unwritable or full folder, corrupt files;
and ``gradvar cache info`` / ``gradvar cache clear``."""

import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import ROOT, TESTS_DIR, make_cell

from gradvar import engine
from gradvar.cli import main
from gradvar.kernels import codegen
from gradvar.kernels.jit import kernel
from gradvar.model import registry

EST = registry.ESTIMATORS
N = 10_007


def _cell():
    return make_cell("normal", "quadratic", mu=0.7, sigma=1.6, k=-0.5)


def _hex(mom):
    values = np.concatenate([mom.moments.ravel(), mom.group_moments.ravel()])
    return [float(v).hex() for v in values]


@pytest.fixture(scope="module")
def expected():
    """The moments through the usual cache: what every broken-cache run must give."""
    return _hex(engine.simulate(_cell(), EST["sf"], N, 4))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """This process's codegen state as at start-up (nothing loaded, no folder checked, no
    note printed), with a private cache folder; ``fresh()`` starts over again."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GRADVAR_CACHE_DIR", str(folder))

    def start_over():
        for name, value in (("_LOADED", {}), ("_LOCATIONS", {}), ("_TEMP", []), ("_NOTES", set())):
            monkeypatch.setattr(codegen, name, value)
        return folder / "kernels"

    start_over.folder = folder / "kernels"
    start_over()
    return start_over


def _run():
    return _hex(engine.simulate(_cell(), EST["sf"], N, 4))


def _notes(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("gradvar:")]


# --- unwritable or full folders ----------------------------------------------------------------
def test_a_folder_that_cannot_be_created_gives_a_temporary_one(
    fresh, capsys, expected, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("GRADVAR_CACHE_DIR", str(blocker / "below"))
    assert _run() == expected
    [note] = _notes(capsys)
    assert "cannot be written (NotADirectoryError" in note and "temporary folder" in note
    temp = codegen._TEMP[0]
    assert any(name.startswith("gradvar_normal_quadratic_sf") for name in os.listdir(temp))
    assert _run() == expected and _notes(capsys) == []  # one note per process


_READ_ONLY_SCRIPT = """
import json
from test_cache import _cell, _hex
from gradvar import engine
from gradvar.kernels import codegen
from gradvar.model import registry
mom = engine.simulate(_cell(), registry.ESTIMATORS["sf"], {n}, 4)
print(json.dumps(dict(hex=_hex(mom), temp=codegen._TEMP)))
"""


_WARM_SCRIPT = """
import json, sys
from test_cache import _cell, _hex
from gradvar import engine, truth
from gradvar.kernels import jit
from gradvar.model import registry
from numba.core.runtime import rtsys
if not {quick}:
    jit.quick_load = lambda dispatcher: None
mom = engine.simulate(_cell(), registry.ESTIMATORS["sf"], {n}, 4)
engine.simulate(_cell(), registry.ESTIMATORS["sf-baseline"], 100, 4)  # the pilot
truth.exact_moments(_cell(), registry.ESTIMATORS["sf"])  # on_states
engine.estimates(_cell(), registry.ESTIMATORS["sf"], 10, 4)  # raw estimates (train)
from helpers import make_cell
truth.exact_gradient(make_cell("categorical", "squared"))  # f at the outcomes, in Python
print(json.dumps(dict(
    hex=_hex(mom),
    refreshed="numba.np.arraymath" in sys.modules,
    arrayobj="numba.np.arrayobj" in sys.modules,
    nrt=rtsys._init,
)))
"""


def test_a_warm_start_loads_kernels_without_numbas_full_refresh(expected):
    """A process whose kernels are cached loads them without Numba's context refresh
    (jit.quick_load: its lowering registries, and scipy.linalg with them, cost about 0.3 s
    per start) and gets the same numbers; without quick_load the refresh is seen.  Nor does
    it start Numba's runtime (every generated function runs without it: 0.02 s per start)
    or import numba.np.arrayobj (the stack-scratch intrinsic needs it to compile only).  The
    categorical ground truth evaluates f in Python (jit.in_python): its family's score
    called a compiled kernel from Python, which compiled it in every run (0.4 s); and the
    raw estimates `train` draws called ``fill``, which is not cached (5-15 s per run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, ROOT])}
    for what, quick in (("warm-up", True), ("quick", True), ("refresh", False)):
        code = _WARM_SCRIPT.format(n=N, quick=quick)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.splitlines()[-1])
        assert out["hex"] == expected
        if what == "warm-up":  # it compiled what the cache lacked (the pilot, on_states)
            continue
        assert out["refreshed"] is not quick
        if quick:
            assert not out["nrt"] and not out["arrayobj"], out


_MIXED_SCRIPT = """
import json, sys
from gradvar.kernels import jit
if {fallback}:  # a Numba that refuses _nrt=False: every kernel compiled with the NRT
    jit.NRT_OFF = {{"_nrt_removed_in_numba_9": False}}
from test_cache import _cell, _hex
from gradvar import engine
from gradvar.model import registry
from numba.core.runtime import rtsys
mom = engine.simulate(_cell(), registry.ESTIMATORS["sf"], {n}, 4)
print(json.dumps(dict(hex=_hex(mom), nrt=rtsys._init)))
"""


def test_kernels_cached_with_the_nrt_are_not_served_to_a_process_without_it(tmp_path, expected):
    """The moments kernels are cached beside their source, keyed by Numba on the signature,
    the CPU and the bytecode, not on the NRT option: a process whose kernels use the NRT
    (the fallback) then one that does not start it loaded the first one's build and
    crashed (SIGSEGV), in every later run.  Both kinds now keep their own cache entries."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([TESTS_DIR, ROOT]),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),  # every Numba cache of these processes
        "GRADVAR_CACHE_DIR": str(tmp_path / "gradvar"),
    }
    # the fallback, then a process that compiles its own kernels, then a warm one
    for run, fallback in enumerate((True, False, False)):
        code = _MIXED_SCRIPT.format(n=N, fallback=fallback)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (run, proc.returncode, proc.stderr[-2000:])
        out = json.loads(proc.stdout.splitlines()[-1])
        assert out["hex"] == expected
        assert out["nrt"] is (run < 2)  # compiling starts the NRT; the warm run does not


def test_a_read_only_folder_gives_a_temporary_one(tmp_path, expected):
    """chmod 555 on the cache folder: the run works from a temporary folder, removed at exit.
    As root (who may write anyway) the subprocess runs without CAP_DAC_OVERRIDE."""
    folder = tmp_path / "cache" / "kernels"
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and no setpriv to drop CAP_DAC_OVERRIDE")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    env = {
        **os.environ,
        "GRADVAR_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([TESTS_DIR, ROOT]),
    }
    code = _READ_ONLY_SCRIPT.format(n=N)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
    finally:
        folder.chmod(0o755)
    if prefix and proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["hex"] == expected
    notes = [line for line in proc.stderr.splitlines() if line.startswith("gradvar:")]
    assert len(notes) == 1 and "cannot be written (PermissionError" in notes[0], proc.stderr
    assert os.listdir(folder) == []
    assert not os.path.exists(out["temp"][0])  # the temporary folder went at exit


def test_a_full_disk_falls_back_to_a_temporary_folder_then_to_memory(
    fresh, capsys, expected, monkeypatch
):
    """Numba cannot save its cache files (ENOSPC): the kernels go to a temporary folder, and
    when saving fails there too they are compiled in memory, without a cache."""
    from numba.core import caching

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caching.IndexDataCacheFile, "_save_index", full)
    assert _run() == expected
    notes = _notes(capsys)
    assert len(notes) == 2, notes
    assert "cannot be written (OSError: No space left on device)" in notes[0]
    assert "compiled in memory" in notes[1]
    assert set(codegen._LOCATIONS.values()) == {None}


def test_our_own_write_failing_moves_on_too(fresh, capsys, expected, monkeypatch):
    real = codegen._write
    configured = str(fresh.folder)

    def write(folder, name, src):
        if folder == configured:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(folder, name, src)

    monkeypatch.setattr(codegen, "_write", write)
    assert _run() == expected
    [note] = _notes(capsys)
    assert f"{configured} cannot be written" in note


def test_no_folder_at_all_compiles_in_memory(fresh, capsys, expected, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GRADVAR_CACHE_DIR", str(blocker / "below"))

    def no_temp(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(codegen.tempfile, "mkdtemp", no_temp)
    assert _run() == expected
    [note] = _notes(capsys)
    assert "compiled in memory" in note and "Read-only file system" in note


# --- corrupt files ----------------------------------------------------------------------------
def _truncate(path):
    with open(path, "r+b") as fh:
        fh.truncate(max(1, os.path.getsize(path) // 3))


def _garble(path):
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 5):
        data[i] = (data[i] * 31 + 7) % 256
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A cache folder holding the compiled kernels of _cell() / sf, made once."""
    folder = tmp_path_factory.mktemp("pristine") / "kernels"
    env = {"GRADVAR_CACHE_DIR": str(folder.parent)}
    saved = {name: getattr(codegen, name) for name in ("_LOADED", "_LOCATIONS", "_TEMP")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for name, value in (("_LOADED", {}), ("_LOCATIONS", {}), ("_TEMP", [])):
            mp.setattr(codegen, name, value)
        engine.simulate(_cell(), EST["sf"], 10, 4)
    assert all(getattr(codegen, name) is value for name, value in saved.items())
    return folder


@pytest.mark.parametrize(
    "damage,pattern,message",
    [
        (_truncate, "__pycache__/gradvar_normal_*.nbi", "failed to load"),
        (_truncate, "__pycache__/gradvar_normal_*.nbc", "failed to load"),
        (_garble, "__pycache__/gradvar_normal_*.nbc", "failed to load"),
        (_garble, "gradvar_normal_*.py", "damaged; rewritten"),
    ],
    ids=["index-truncated", "data-truncated", "data-garbled", "module-garbled"],
)
def test_a_corrupt_cache_file_is_removed_and_rebuilt(
    fresh, capsys, expected, pristine, damage, pattern, message
):
    folder = fresh.folder
    shutil.copytree(pristine, folder)  # copy2 keeps the times: Numba's index stays valid
    assert _run() == expected and _notes(capsys) == []  # loads from the copied cache
    files = sorted(folder.glob(pattern))
    assert files, sorted(p.name for p in folder.rglob("*"))
    for path in files:
        damage(path)
    fresh()  # a new process, as far as codegen knows
    assert _run() == expected
    notes = _notes(capsys)
    assert len(notes) == 1 and message in notes[0], notes
    fresh()
    assert _run() == expected and _notes(capsys) == []  # rebuilt: loads cleanly again


@pytest.mark.parametrize("damage", [_truncate, _garble], ids=["truncated", "garbled"])
def test_a_corrupt_moments_cache_is_removed_and_rebuilt_with_the_combination(
    fresh, capsys, expected, pristine, damage
):
    """The shared moments module's cache files are read only when a combination that calls
    it compiles (its code is then linked into the combination's): one that fails to load
    there is removed and rebuilt with the combination, after one note."""
    folder = fresh.folder
    shutil.copytree(pristine, folder)
    for path in folder.glob("__pycache__/gradvar_normal_*"):
        path.unlink()  # the combination compiles again, and loads the moments from the cache
    files = sorted(folder.glob("__pycache__/gradvar_moments_*.nbc"))
    assert files, sorted(p.name for p in folder.rglob("*"))
    for path in files:
        damage(path)
    assert _run() == expected
    notes = _notes(capsys)
    assert len(notes) == 1 and "failed to load" in notes[0], notes
    fresh()
    assert _run() == expected and _notes(capsys) == []  # rebuilt: loads cleanly again


@kernel
def _typing_error(fp, objp, opts, aux, key, counter0, batch, work, g):
    g[0] = "not a number"


# held by the (unregistered) record from import on: materialize swaps the module global only
BAD = registry.Estimator("bad", "a typing error", "", _typing_error)


def test_a_genuine_compile_error_is_not_mistaken_for_a_broken_cache(fresh, capsys):
    """Only failures inside Numba's cache lead to a rebuild: a typing error surfaces as it is."""
    from numba.core.errors import TypingError

    with pytest.raises(TypingError):
        engine.simulate(_cell(), BAD, 10, 0)
    assert _notes(capsys) == []


# --- gradvar cache info / clear -------------------------------------------------------------
def test_cache_info_and_clear(fresh, capsys, expected):
    folder = fresh.folder
    runner = CliRunner()
    result = runner.invoke(main, ["cache", "info"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"folder: {folder}" in result.output and "files:  0 (0 bytes)" in result.output
    assert _run() == expected
    (folder / "not-ours.txt").write_text("kept\n")
    ours = [p for p in folder.rglob("gradvar_*") if p.is_file()]
    size = sum(p.stat().st_size for p in ours)
    result = runner.invoke(main, ["cache", "info"], catch_exceptions=False)
    assert f"files:  {len(ours)} (" in result.output, result.output
    assert len(ours) >= 3  # the module and its Numba index and data files
    result = runner.invoke(main, ["cache", "clear"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.startswith(f"removed {len(ours)} files (")
    assert result.output.rstrip().endswith(str(folder))
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["not-ours.txt"]
    assert size > 0


def test_cache_size_text():
    from gradvar.cli.cache import size_text

    assert size_text(0) == "0 bytes" and size_text(999) == "999 bytes"
    assert size_text(114_600) == "114.6 kB" and size_text(7_400_000) == "7.4 MB"
    assert size_text(3 * 10**12) == "3000.0 GB"
