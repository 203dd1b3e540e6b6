"""Ctrl-C (issue 9, item 5): every command exits with status 130 soon after SIGINT, whatever
--batch is, with no traceback; a resumable one keeps its finished work (compare and
sweep-tau their cells, pick-one its picks, gumbel-max its draws) and --resume gives the
bytes of an uninterrupted run.

The runs below would take hours; the test sends SIGINT once the command is working (its
DIR.partial/ exists) and allows a generous liveness time-out, not a timing."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gradvar import interrupt as stop_flag
from gradvar import io
from gradvar.studies import base, gumbel_max, pick_one, study

ROOT = Path(__file__).resolve().parents[1]
LIVENESS = 60  # seconds: far beyond the ~1 s a prompt exit takes, short of a hung run

KERNELS, SAVED = "kernels", "saved"  # when to send SIGINT: kernel threads busy, work saved
LONG_RUNS = {  # (arguments, when): each would run for hours, one kernel call for hours too
    "compare-huge-batch": (["compare", "--batch", "1e7", "--samples", "1e5"], KERNELS),
    "pick-one": (["pick-one", "--samples", "1e12"], SAVED),
    "gumbel-max": (["gumbel-max", "--samples", "1e12"], SAVED),
    "train": (["train", "--estimator", "gumbel-softmax", "--steps", "1e7", "--batch", "1e6"], None),
    "sweep-tau": (["sweep-tau", "--samples", "1e5", "--batch", "1e7", "--tau", "0.5,1"], KERNELS),
}


def kernels_busy(pid):
    """True once a thread other than the main one has used 0.3 s of CPU: the kernels run
    (Numba compiles in the main thread), so SIGINT lands inside a kernel call."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name == str(pid):
            continue
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        if int(fields[11]) + int(fields[12]) >= 0.3 * os.sysconf("SC_CLK_TCK"):  # utime+stime
            return True
    return False


def ready(proc, folder, when):
    """Whether the run is where the test wants SIGINT to find it."""
    if not folder.exists():
        return False
    if when == KERNELS:
        return kernels_busy(proc.pid)
    if when == SAVED:
        return any((folder / base.CELLS).glob(f"*{io.STATE_SUFFIX}"))
    return True


def interrupt(run, tmp_path):
    """Start ``gradvar ARGS --out o``, send SIGINT once it is ``ready``; (status, stderr)."""
    args, when = run
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen(
        [sys.executable, "-m", "gradvar", *args, "--out", "o", "--no-plot"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 3 * LIVENESS
        while not ready(proc, tmp_path / "o.partial", when):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        if when is None:
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        try:
            err = proc.communicate(timeout=LIVENESS)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"still running {LIVENESS} s after SIGINT")
    return proc.returncode, err


@pytest.mark.parametrize("name", ["compare-huge-batch", "pick-one"])
def test_ctrl_c_exits_130_promptly_and_cleanly(tmp_path, name):
    status, err = interrupt(LONG_RUNS[name], tmp_path)
    assert status == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "Interrupted" in err and ("picks (" in err) == (name == "pick-one"), err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gumbel-max", "train", "sweep-tau"])
def test_ctrl_c_exits_130_for_every_command(tmp_path, name):
    status, err = interrupt(LONG_RUNS[name], tmp_path)
    assert status == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert not (tmp_path / "o").exists()
    if name != "train":  # resumable: the partial (and its experiment) is kept
        assert (tmp_path / "o.partial" / "experiment.json").is_file()
        assert "--resume" in err


# --- pick-one and gumbel-max keep what they finished (in process: the interrupt is simulated) --
KEEPING = {
    "pick-one": (["pick-one", "--samples", "5000", "4,5,6", "0,5,10", "7,-1"], "picks"),
    "gumbel-max": (["gumbel-max", "--samples", "3000", "--logits", "1,0,-1"], "draws"),
}


class Checks:
    """Stands in for :func:`gradvar.interrupt.check` (called before each chunk): counts the
    calls and raises KeyboardInterrupt at call number ``at``, as Ctrl-C would."""

    def __init__(self, monkeypatch, at=None):
        self.calls, self.at = 0, at
        monkeypatch.setattr(stop_flag, "check", self)

    def __call__(self):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt


def small_chunks(monkeypatch):
    """Chunks of 300 picks or 100 draws, each saved: many units of work in a small run."""
    monkeypatch.setattr(base, "SAVE_SECONDS", 0.0)
    monkeypatch.setattr(pick_one, "CHUNK", 300)
    monkeypatch.setattr(gumbel_max, "CHUNK_VALUES", 300)


def outputs(folder, command):
    return {name: (folder / f"{name}.csv").read_bytes() for name in study(command).tables}


@pytest.mark.parametrize("command", KEEPING)
def test_ctrl_c_keeps_finished_work_and_resume_equals_the_whole_run(
    cli, tmp_path, monkeypatch, command
):
    args, unit = KEEPING[command]
    small_chunks(monkeypatch)
    whole = Checks(monkeypatch)
    assert cli(*args, "--out", "whole", "-q", "--no-plot").exit_code == 0
    for at in (7, 12):  # interrupted twice: after 6 chunks, then after 11 more
        Checks(monkeypatch, at)
        resume = ["--resume"] if at == 12 else []
        result = cli(*args, "--out", "o", "-q", "--no-plot", *resume)
        assert result.exit_code == 130, result.output
        assert f"{unit} " in result.output and "o.partial" in result.output
        assert "--resume" in result.output and not (tmp_path / "o").exists()
    rest = Checks(monkeypatch)
    assert cli(*args, "--out", "o", "-q", "--no-plot", "--resume").exit_code == 0
    assert rest.calls == whole.calls - 6 - 11  # the 17 saved chunks were not drawn again
    assert outputs(tmp_path / "o", command) == outputs(tmp_path / "whole", command)


@pytest.mark.parametrize("command", KEEPING)
def test_resume_recomputes_a_damaged_state_and_still_matches(cli, tmp_path, monkeypatch, command):
    args, _ = KEEPING[command]
    small_chunks(monkeypatch)
    assert cli(*args, "--out", "whole", "-q", "--no-plot").exit_code == 0
    Checks(monkeypatch, 9)
    assert cli(*args, "--out", "o", "-q", "--no-plot").exit_code == 130
    Checks(monkeypatch)
    for state in (tmp_path / "o.partial" / base.CELLS).glob(f"*{io.STATE_SUFFIX}"):
        text = state.read_text()
        state.write_text(text.replace("1", "2", 1) if "start" in text else text[: len(text) // 2])
    result = cli(*args, "--out", "o", "-q", "--no-plot", "--resume")
    assert result.exit_code == 0 and "failed its check" in result.output
    assert outputs(tmp_path / "o", command) == outputs(tmp_path / "whole", command)


def test_a_resumed_state_of_another_experiment_is_refused(cli, tmp_path, monkeypatch):
    small_chunks(monkeypatch)
    Checks(monkeypatch, 5)
    assert cli("pick-one", "--samples", "5000", "--out", "o", "-q").exit_code == 130
    result = cli("pick-one", "--samples", "5000", "--seed", "1", "--out", "o", "-q", "--resume")
    assert result.exit_code == 2 and "different experiment" in result.output


# --- the SIGINT handler: a swallowed Ctrl-C is seen again, a second one is ignored -----------
SWALLOWED = """
import ctypes, signal, sys
from gradvar import interrupt
if sys.argv[1] == "install":
    interrupt.install()
callback = ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGINT))
callback()  # like llvmlite's callback while Numba compiles: the KeyboardInterrupt is ignored
try:
    interrupt.check()
except KeyboardInterrupt:
    try:
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C while the first is handled
        print("handled once")
    except KeyboardInterrupt:
        print("raised twice")
    sys.exit(130)
print("lost")
"""


@pytest.mark.parametrize("mode, expected", [("install", "handled once"), ("default", "lost")])
def test_a_ctrl_c_swallowed_by_a_callback_is_seen_and_handled_once(mode, expected):
    """With Python's own handler (``default``, the deliberately wrong case) the interrupt
    inside the callback is lost; with :func:`gradvar.interrupt.install` it is raised again
    at the next check, and a second SIGINT does not interrupt its handling."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", SWALLOWED, mode], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == expected, out.stderr
    assert out.returncode == (130 if mode == "install" else 0)
    assert ("Exception ignored" in out.stderr) == (mode == "default"), out.stderr


def test_the_kernel_wait_raises_a_swallowed_interrupt(monkeypatch):
    """engine.run_parallel checks the flag while it waits for the kernel threads."""
    from helpers import make_cell

    from gradvar import engine
    from gradvar.model import ESTIMATORS

    cell = make_cell("normal", "quadratic")
    assert engine.simulate(cell, ESTIMATORS["sf"], 1000, seed=0).n_finite == 1000
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(stop_flag, "_STOP", stop)
    with pytest.raises(KeyboardInterrupt):
        engine.simulate(cell, ESTIMATORS["sf"], 1000, seed=0)


# --- real SIGINT to pick-one and gumbel-max: kept, resumed to the uninterrupted bytes -----------
@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["pick-one", "--samples", "1e8", "4,5,6", "0,5,10"],
        ["gumbel-max", "--samples", "6e6", "--logits", "2,0.5,0.1"],
    ],
    ids=["pick-one", "gumbel-max"],
)
def test_sigint_keeps_saved_work_and_resume_gives_the_same_bytes(tmp_path, args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    gradvar = [sys.executable, "-m", "gradvar", *args, "--no-plot", "-q"]
    whole = subprocess.run([*gradvar, "--out", "whole"], cwd=tmp_path, env=env, timeout=600)
    assert whole.returncode == 0
    cells = tmp_path / "o.partial" / base.CELLS
    with subprocess.Popen(
        [*gradvar, "--out", "o"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + LIVENESS
        while not list(cells.glob(f"*{io.STATE_SUFFIX}")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "nothing was saved"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=LIVENESS)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err and " of " in err and "--resume" in err, err
    resumed = subprocess.run([*gradvar, "--out", "o", "--resume"], cwd=tmp_path, env=env)
    assert resumed.returncode == 0
    command = args[0]
    assert outputs(tmp_path / "o", command) == outputs(tmp_path / "whole", command)
