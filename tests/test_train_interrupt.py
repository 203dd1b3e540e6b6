"""Ctrl-C in ``gradvar train`` (issue 9 item 5): the finished trajectories (estimator x seed)
are kept in DIR.partial/, ``--resume`` continues with the next one, and the resumed
results.csv equals the uninterrupted run's byte for byte (train has no timing columns)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from gradvar.cli import common

ROOT = Path(__file__).resolve().parents[1]
LIVENESS = 120  # seconds: a generous time-out, not a timing
ARGS = ["--problem", "bernoulli-toy", "--estimator", "sf,relax", "--seed", "0,1", "--no-plot"]


def experiment(steps):
    return {
        "command": "train",
        "problem": "bernoulli-toy",
        "estimator": "sf,relax",
        "seed": "0,1",
        "steps": steps,
        "no-plot": True,
    }


def test_an_interrupted_train_resumes_to_the_same_bytes(cli, tmp_path):
    whole = cli("train", *ARGS, "--steps", "20", "--out", str(tmp_path / "whole"), "-q")
    assert whole.exit_code == 0, whole.output

    def stop_in_the_third(est, seed, step, params, objective):
        if (est, seed, step) == ("relax", 0, 5):
            raise KeyboardInterrupt

    target = tmp_path / "cut"
    with pytest.raises(click.exceptions.Exit) as stop:
        common.run_study("train", experiment(20), out=target, quiet=True, on_step=stop_in_the_third)
    assert stop.value.exit_code == 130
    partial = tmp_path / "cut.partial"
    assert not target.exists()
    assert sorted(p.name for p in (partial / "cells").glob("*.check.json")) == [
        "run00000.check.json",
        "run00001.check.json",
    ]
    resumed = cli("train", *ARGS, "--steps", "20", "--out", str(target), "--resume", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert (target / "results.csv").read_bytes() == (
        tmp_path / "whole" / "results.csv"
    ).read_bytes()
    assert not partial.exists()


def test_resume_refuses_a_different_experiment(cli, tmp_path):
    def stop_at_once(est, seed, step, params, objective):
        raise KeyboardInterrupt

    with pytest.raises(click.exceptions.Exit):
        common.run_study(
            "train", experiment(5), out=tmp_path / "o", quiet=True, on_step=stop_at_once
        )
    other = cli("train", *ARGS, "--steps", "6", "--out", str(tmp_path / "o"), "--resume")
    assert other.exit_code == 2 and "different experiment" in other.output


@pytest.mark.slow
def test_sigint_keeps_finished_trajectories_and_exits_130(tmp_path):
    """A real SIGINT once the first trajectory is checkpointed: exit 130, one line, no
    traceback, that trajectory kept; --resume completes the run."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "gradvar", "train", *ARGS, "--steps", "3000", "--out", "o"]
    first = tmp_path / "o.partial" / "cells" / "run00000.check.json"
    with subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + LIVENESS
        while not first.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no trajectory finished"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=LIVENESS)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert first.exists() and not (tmp_path / "o").exists()
    done = subprocess.run(
        [*args, "--resume", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "results.csv").is_file()
