"""Sweeps on a Dask cluster (issue 13): the same results.csv as a local run, byte for byte
apart from the timing columns, whatever the number of workers; a lost worker, Ctrl-C and
--resume, an unreachable scheduler.

One two-process LocalCluster serves the module; the runs are small (their cells split into
blocks of chunks by a small TASK_SAMPLES, so the block path runs too)."""

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, rows_without_timing, run_python

from gradvar import executor
from gradvar.studies import base, compare, study

distributed = pytest.importorskip("distributed")

COMPARE = [
    "compare",
    "--mu",
    "-1,0.5",
    "--estimator",
    "sf,sf-baseline,reparam,exact",
    "--baseline",
    "mean,optimal",
    "--samples",
    "40000",
    "--no-plot",
]
SWEEP = ["sweep-tau", "--estimator", "gumbel-softmax", "--reference", "sf", "--tau", "0.3,1"]
SWEEP += ["--samples", "20000", "--no-plot"]


@pytest.fixture(scope="module")
def cluster():
    """The address of a 2-worker LocalCluster (one Dask thread each), as ``local:2`` starts."""
    with executor.local_cluster(2) as local:
        yield local.scheduler_address


@pytest.fixture
def blocks(monkeypatch):
    """Units of more than 2**14 samples split into blocks of whole groups of chunks."""
    monkeypatch.setattr(executor, "TASK_SAMPLES", 2**14)


def same_tables(a, b, names=("results", "summary")):
    """The tables of folders a and b agree but for timing, column order included."""
    for name in names:
        got, want = ([[*r.items()] for r in rows_without_timing(d / f"{name}.csv")] for d in (a, b))
        assert got == want, name


def test_compare_on_a_cluster_gives_the_local_bytes(cli, tmp_path, cluster, blocks, monkeypatch):
    local = cli(*COMPARE, "--out", "local", "-q")
    assert local.exit_code == 0, local.output
    from gradvar.kernels import codegen

    monkeypatch.setattr(codegen, "compiled", None)  # the client compiles nothing: it would fail
    remote = cli(*COMPARE, "--out", "remote", "-q", "--scheduler", cluster)
    assert remote.exit_code == 0, remote.output
    same_tables(tmp_path / "local", tmp_path / "remote")
    meta = json.loads((tmp_path / "remote" / "meta.json").read_text())
    sched = meta["scheduler"]
    assert sched["address"] == cluster and sched["workers"] == 2
    assert len(sched["cells"]) == 2 and all(c["workers"] for c in sched["cells"])
    assert all({"cpu", "numpy", "numba"} <= set(w) for w in sched["worker_info"].values())
    assert "scheduler" not in meta["experiment"]  # a run-time choice, never replayed


def test_sweep_tau_is_the_same_on_one_or_two_workers(cli, tmp_path, cluster, blocks, monkeypatch):
    assert cli(*SWEEP, "--out", "local", "-q").exit_code == 0
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster)  # Dask's own variable
    assert cli(*SWEEP, "--out", "two", "-q").exit_code == 0
    one = cli(*SWEEP, "--out", "one", "-q", "--scheduler", "local:1")
    assert one.exit_code == 0, one.output
    names = ("results", "summary", "best_tau")
    same_tables(tmp_path / "local", tmp_path / "two", names)
    same_tables(tmp_path / "local", tmp_path / "one", names)
    assert json.loads((tmp_path / "one" / "meta.json").read_text())["scheduler"]["workers"] == 1


def test_expression_objectives_travel_to_the_workers(cli, tmp_path, cluster):
    expression = ["compare", "--objective", "exp(-k*z**2)", "--set", "k=0.5,2"]
    expression += ["--estimator", "reparam", "--samples", "20000", "--no-plot", "-q"]
    local = cli(*expression, "--out", "local")
    assert local.exit_code == 0, local.output
    remote = cli(*expression, "--out", "remote", "--scheduler", cluster)
    assert remote.exit_code == 0, remote.output
    same_tables(tmp_path / "local", tmp_path / "remote")


def test_warnings_on_the_workers_make_the_local_runs_note(cli, cluster):
    """The ground truth's overflow warnings are raised on the workers: the client counts
    them in its one note exactly as a local run does (they were printed by the workers, line
    by line, and missing from the count)."""
    args = ("compare", "--sigma", "1e-300", "--estimator", "sf,sf-baseline", "--samples", "1e4")
    notes = []
    for more in ([], ["--scheduler", cluster]):
        result = cli(*args, "--no-plot", "--out", f"o{len(notes)}", *more)
        assert result.exit_code == 0, result.output
        notes.append([line for line in result.output.splitlines() if "warning(s)" in line])
    assert len(notes[0]) == 1 and notes[1] == notes[0]


def test_workers_with_other_versions_get_a_note(cli, cluster, monkeypatch):
    from gradvar import io

    real = io.versions
    monkeypatch.setattr(io, "versions", lambda: dict(real(), numpy="0.0"))  # here, not there
    result = cli("compare", "--samples", "1000", "--no-plot", "--out", "o", "--scheduler", cluster)
    assert result.exit_code == 0
    assert "(here: " in result.output and "may differ from a local run" in result.output


@pytest.mark.slow
def test_plugins_travel_to_the_workers(tmp_path, cluster):
    # a plugin registers entries for good: in fresh processes (and in the workers)
    plugin = ["compare", "--plugin", f"{ROOT}/examples/exponential.py", "--family"]
    plugin += ["exponential", "--param", "lam=0.5,2", "--estimator", "sf", "--samples", "20000"]
    plugin += ["--no-plot", "-q"]
    for out, more in (("plocal", []), ("premote", ["--scheduler", cluster])):
        proc = subprocess.run(
            [sys.executable, "-m", "gradvar", *plugin, *more, "--out", out],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0 and not proc.stderr, proc.stderr
    same_tables(tmp_path / "plocal", tmp_path / "premote")
    # from Python: a plugin loaded with gradvar.plugins.load travels too
    code = (
        "import gradvar\nfrom gradvar import plugins\n"
        f"plugins.load({ROOT + '/examples/exponential.py'!r})\n"
        "kw = dict(family='exponential', lam='0.5,2', estimator='sf', samples=20000)\n"
        "a = gradvar.compare(**kw)\n"
        f"b = gradvar.compare(**kw, scheduler={cluster!r})\n"
        "drop = ['seconds', 'estimates_per_s', 'work_var']\n"
        "print(a.drop(columns=drop).to_csv() == b.drop(columns=drop).to_csv())\n"
    )
    assert run_python(code).strip() == "True"


def _prepared(args, out, resume=False, scheduler=None):
    """A prepared compare run of the CLI-style options ``args`` (name, value pairs)."""
    experiment = {"command": "compare", **args}
    return base.prepare(study("compare"), experiment, out, True, resume, "test", scheduler)


PYTHON_RUN = {
    "mu": "-1,0,1",
    "estimator": "sf,reparam",
    "samples": 60000,
    "no-plot": True,
}


def test_the_progress_bar_counts_every_estimate_once(tmp_path, cluster, blocks):
    run = {"family": "categorical", "estimator": "sf,gumbel-softmax", "tau": "0.5,1"}
    run.update(samples=60000, **{"no-plot": True})
    prepared = _prepared(run, tmp_path / "o", scheduler=cluster)
    ticks = []
    base.run_into_folder(prepared, ticks.append)  # sf ignores tau: it runs once
    assert sum(ticks) == prepared.total == 3 * run["samples"] and len(ticks) > 3


def test_run_takes_the_scheduler_for_the_commands_that_run_cells(cli, tmp_path, cluster):
    (tmp_path / "exp.toml").write_text(
        'command = "compare"\nmu = "0,1"\nestimator = "sf"\nsamples = 5000\nno-plot = true\n'
    )
    (tmp_path / "pick.toml").write_text('command = "pick-one"\nsamples = 1000\nno-plot = true\n')
    assert cli("run", "exp.toml", "--out", "local", "-q").exit_code == 0
    result = cli("run", "exp.toml", "pick.toml", "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    assert "note: --scheduler: pick-one runs here" in result.output
    same_tables(tmp_path / "local", tmp_path / "results" / "exp")
    assert json.loads((tmp_path / "results" / "exp" / "meta.json").read_text())["scheduler"]
    assert cli("run", "exp.toml", "--scheduler", "nowhere").exit_code == 2


def test_a_worker_killed_mid_run_changes_nothing(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(executor, "TASK_SAMPLES", 2**17)  # 8 blocks per unit
    run = dict(PYTHON_RUN, samples=10**6)
    base.run_into_folder(_prepared(run, tmp_path / "local"))
    killed = []

    def kill_once(k):
        if killed:
            return
        with distributed.Client(cluster, set_as_default=False) as client:
            busy = {w: len(keys) for w, keys in client.processing().items() if keys}
            victim = max(busy, key=busy.get)
            pid = client.run(os.getpid, workers=[victim])[victim]
        killed.append(busy[victim])
        os.kill(pid, signal.SIGKILL)  # its nanny starts a new one; Dask reruns its tasks

    base.run_into_folder(_prepared(run, tmp_path / "remote", scheduler=cluster), kill_once)
    assert killed and killed[0] >= 1  # the victim held unfinished tasks
    same_tables(tmp_path / "local", tmp_path / "remote")


def _ctrl_c_at_second_call(monkeypatch, owner, name):
    """Make ``owner.name`` raise KeyboardInterrupt (Ctrl-C) at its second call; return the
    real function (to put back for the resume)."""
    real, calls = getattr(owner, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return real


def test_ctrl_c_keeps_finished_cells_and_resume_completes(tmp_path, cluster, blocks, monkeypatch):
    base.run_into_folder(_prepared(PYTHON_RUN, tmp_path / "local"))
    target = tmp_path / "remote"
    real = _ctrl_c_at_second_call(monkeypatch, compare, "run_cell")  # as cell 2 is written
    with pytest.raises(base.Interrupted) as stop:
        base.run_into_folder(_prepared(PYTHON_RUN, target, scheduler=cluster))
    assert stop.value.kept == "1 finished cell(s)" and not target.exists()
    monkeypatch.setattr(compare, "run_cell", real)
    base.run_into_folder(_prepared(PYTHON_RUN, target, resume=True, scheduler=cluster))
    same_tables(tmp_path / "local", target)


def test_unreachable_scheduler_exits_1_with_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 1)
    result = cli(*COMPARE, "--out", "o", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], result.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


@pytest.mark.parametrize(
    "address, message",
    [("local:0", "local:N"), ("tcp://nohost", "tcp://HOST:PORT"), ("foo://a:1", "HOST:PORT")],
)
def test_bad_scheduler_exits_2(cli, tmp_path, address, message):
    result = cli(*COMPARE, "--out", "o", "--scheduler", address)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_scheduler_without_dask_says_how_to_install_it(cli, monkeypatch):
    monkeypatch.setattr(executor, "installed", lambda: False)
    result = cli(*COMPARE, "--out", "o", "--scheduler", "local")
    assert result.exit_code == 2 and "pip install 'gradvar[dask]'" in result.output


def test_a_local_run_does_not_import_dask():
    out = run_python(
        "import sys; from gradvar import compare\n"
        "compare(estimator='sf', samples=1000)\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    assert out.strip() == "[]"


@pytest.mark.slow
def test_a_64_cell_sweep_on_a_cluster_gives_the_local_bytes(cli, tmp_path, cluster):
    args = ["compare", "--mu", "-2:2:8", "--sigma", "0.5:2:8", "--estimator", "sf,reparam"]
    args += ["--samples", "1e5", "--no-plot", "-q"]
    assert cli(*args, "--out", "local").exit_code == 0
    assert cli(*args, "--out", "remote", "--scheduler", cluster).exit_code == 0
    same_tables(tmp_path / "local", tmp_path / "remote")


TRAIN = ["train", "--problem", "bernoulli-toy", "--estimator", "sf,relax", "--seed", "0,1"]
TRAIN += ["--steps", "3", "--no-plot", "-q"]


def test_train_on_a_cluster_gives_the_local_bytes(cli, tmp_path, cluster, monkeypatch):
    local = cli(*TRAIN, "--out", "local")
    assert local.exit_code == 0, local.output
    from gradvar.kernels import codegen

    monkeypatch.setattr(codegen, "compiled", None)  # the client compiles nothing: it would fail
    remote = cli(*TRAIN, "--out", "remote", "--scheduler", cluster)
    assert remote.exit_code == 0, remote.output
    same_tables(tmp_path / "local", tmp_path / "remote", ("results",))
    sched = json.loads((tmp_path / "remote" / "meta.json").read_text())["scheduler"]
    assert sched["workers"] == 2 and sorted(c["cell"] for c in sched["cells"]) == [0, 1, 2, 3]


def test_run_sends_a_train_experiment_to_the_cluster(cli, tmp_path, cluster):
    (tmp_path / "t.toml").write_text('command = "train"\nsteps = 1\nno-plot = true\n')
    result = cli("run", "t.toml", "--scheduler", cluster, "-q")
    assert result.exit_code == 0 and "runs here" not in result.output, result.output
    assert json.loads((tmp_path / "results" / "t" / "meta.json").read_text())["scheduler"]


def test_train_from_python_on_a_cluster_and_its_steps(cluster):
    from gradvar import train

    kw = dict(problem="bump", estimator="exact,gumbel-softmax", seed="0,1", steps=2)
    steps, remote_steps = [], []
    a = train(**kw, on_step=lambda *s: steps.append((*s[:3], s[3]["m"][0], s[4])))
    on_remote = lambda *s: remote_steps.append((*s[:3], s[3]["m"][0], s[4]))  # noqa: E731
    b = train(**kw, on_step=on_remote, scheduler=cluster)
    assert a.to_csv() == b.to_csv()
    assert sorted(remote_steps) == sorted(steps) and len(steps) == 4 * 3


def test_train_ctrl_c_on_a_cluster_keeps_trajectories_and_resumes(tmp_path, cluster, monkeypatch):
    from gradvar import io

    def prepared(out, resume=False, scheduler=None):
        experiment = {"command": "train", "problem": "bernoulli-toy", "estimator": "sf,relax"}
        experiment.update(seed="0,1", steps=3, **{"no-plot": True})
        return base.prepare(study("train"), experiment, out, True, resume, "test", scheduler)

    base.run_into_folder(prepared(tmp_path / "local"))
    target = tmp_path / "remote"
    real = _ctrl_c_at_second_call(monkeypatch, io, "write_checked")  # as trajectory 2 is saved
    with pytest.raises(base.Interrupted) as stop:
        base.run_into_folder(prepared(target, scheduler=cluster))
    assert stop.value.kept == "1 finished trajectory(ies)" and not target.exists()
    monkeypatch.setattr(io, "write_checked", real)
    saved = list((stop.value.partial / base.CELLS).glob(f"run*{io.CHECK_SUFFIX}"))
    kept = int(saved[0].name[3:8])  # whichever trajectory finished first
    ticks = []
    base.run_into_folder(prepared(target, resume=True, scheduler=cluster), ticks.append)
    assert sum(ticks) == 4
    cells = json.loads((target / "meta.json").read_text())["scheduler"]["cells"]
    assert sorted(c["cell"] for c in cells) == sorted({0, 1, 2, 3} - {kept})
    same_tables(tmp_path / "local", target, ("results",))
