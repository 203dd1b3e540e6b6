"""One writer per results folder, and a resume that verifies its checkpoints (issue 9,
items 1, 2 and 9): each test reproduces a finding of the reliability trial."""

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import rows_without_timing

from gradvar import io

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["compare", "--estimator", "sf,reparam", "--mu", "-1:1:5", "--samples", "3000"]
SWEEP += ["--no-plot", "-q"]


@contextmanager
def hold_lock(partial):
    """A child process that holds the lock of ``partial`` for the block, then is killed."""
    code = (
        "import sys, time; from gradvar import io; io.lock_partial(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(600)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(partial)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout.readline().strip() == "locked"
            yield child
        finally:
            child.kill()


def interrupt_after(monkeypatch, cells):
    """Make compare's run_cell raise KeyboardInterrupt (Ctrl-C) once ``cells`` are done."""
    from gradvar.studies import compare as api

    real, calls = api.run_cell, []

    def run_cell(plan, cell, progress=None, *args, **kwargs):
        calls.append(cell)
        if len(calls) > cells:
            raise KeyboardInterrupt
        return real(plan, cell, progress, *args, **kwargs)

    monkeypatch.setattr(api, "run_cell", run_cell)
    return calls


# --- item 1: one writer per folder ---------------------------------------------------------
def test_a_second_writer_on_the_same_out_exits_2_naming_folder_and_pid(cli, tmp_path):
    with hold_lock(tmp_path / "s.partial") as child:
        (tmp_path / "s.partial" / "cells").mkdir()  # the other run's finished cells
        (tmp_path / "s.partial" / "cells" / "0.summary.csv").write_text("theirs")
        result = cli(*SWEEP, "--out", "s")
    assert result.exit_code == 2, result.output
    assert "s.partial" in result.output and f"pid {child.pid}" in result.output
    assert "the run failed" not in result.output  # they are not this run's to resume
    shutil.rmtree(tmp_path / "s.partial" / "cells")
    assert not (tmp_path / "s").exists()
    # the lock of a dead process is released: the next run takes the stale partial over
    result = cli(*SWEEP, "--out", "s")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "meta.json",
        "results.csv",
        "summary.csv",
    ]


def test_a_run_whose_folder_was_committed_meanwhile_keeps_it(tmp_path):
    """The loser of a race never deletes the winner's folder, and is not told to --force."""
    target = tmp_path / "s"
    with pytest.raises(io.FolderExistsError, match="another run") as err:
        with io.atomic_folder(target) as tmp:
            (tmp / "mine").write_text("mine")
            target.mkdir()  # another run commits first
            (target / "meta.json").write_text("{}")
    assert "--force" not in str(err.value)
    assert sorted(p.name for p in target.iterdir()) == ["meta.json"]
    assert not io.partial_path(target).exists()


def test_default_folders_of_runs_in_the_same_second_never_collide(tmp_path):
    target = tmp_path / "compare-20260101-000000"
    with hold_lock(io.partial_path(target)):  # another run took the name first
        with io.atomic_folder(target, unique=True) as tmp:
            (tmp / "a").write_text("a")
    assert (tmp_path / "compare-20260101-000000-2" / "a").exists()
    assert io.next_name(tmp_path / "compare-20260101-000000-2").name.endswith("000000-3")


# --- item 9: --force and odd --out names ----------------------------------------------------
def test_force_replaces_only_a_results_folder(cli, tmp_path):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.tex").write_text("years of work")
    result = cli(*SWEEP, "--out", "thesis", "--force")
    assert result.exit_code == 2 and "not a gradvar results folder" in result.output
    assert (tmp_path / "thesis" / "thesis.tex").read_text() == "years of work"


def test_force_through_a_symlink_replaces_its_folder_and_leaves_no_stray(cli, tmp_path):
    assert cli(*SWEEP, "--out", "real").exit_code == 0
    (tmp_path / "link").symlink_to("real")
    result = cli(*SWEEP, "--seed", "1", "--out", "link", "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert {r["seed"] for r in rows_without_timing(tmp_path / "link" / "results.csv")} == {"1"}


@pytest.mark.parametrize(
    "out, message",
    [
        (".", "does not name a new folder"),
        ("", "does not name a new folder"),
        ("x" * 300, "too long"),
        ("X.partial", "kept for folders being written"),
    ],
    ids=["dot", "empty", "long", "partial"],
)
def test_odd_out_names_are_refused_with_one_line(cli, tmp_path, out, message):
    result = cli(*SWEEP, "--out", out, "--force")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


# --- item 2: a resume that verifies --------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    ["truncate-mid-row", "truncate-row-boundary", "empty-summary", "random-bytes", "no-check"],
)
def test_resume_recomputes_a_damaged_cell_and_matches_the_whole_run(
    cli, tmp_path, monkeypatch, damage
):
    assert cli(*SWEEP, "--out", "whole").exit_code == 0
    interrupt_after(monkeypatch, 3)
    assert cli(*SWEEP, "--out", "x").exit_code == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    cells = tmp_path / "x.partial" / "cells"
    results, summary = cells / "cell00001.results.csv", cells / "cell00001.summary.csv"
    if damage == "truncate-mid-row":
        os.truncate(results, results.stat().st_size // 2 + 3)
    elif damage == "truncate-row-boundary":
        results.write_text("".join(results.read_text().splitlines(keepends=True)[:2]))
    elif damage == "empty-summary":
        summary.write_text("")
    elif damage == "random-bytes":
        results.write_bytes(os.urandom(500))
    else:
        (cells / f"cell00001{io.CHECK_SUFFIX}").unlink()
    result = cli(*SWEEP, "--out", "x", "--resume")
    assert result.exit_code == 0, result.output
    assert "cell00001" in result.output and "recomputing" in result.output
    assert "cell00000" not in result.output  # the good cells are kept, not recomputed
    assert rows_without_timing(tmp_path / "x" / "results.csv") == rows_without_timing(
        tmp_path / "whole" / "results.csv"
    )
    assert (tmp_path / "x" / "summary.csv").read_text().count("\n") == (
        tmp_path / "whole" / "summary.csv"
    ).read_text().count("\n")


@pytest.mark.parametrize("damage", ["missing", "torn"])
def test_resume_refuses_without_a_valid_experiment_json(cli, tmp_path, monkeypatch, damage):
    interrupt_after(monkeypatch, 2)
    assert cli(*SWEEP, "--out", "x").exit_code == 130
    path = tmp_path / "x.partial" / "experiment.json"
    if damage == "missing":
        path.unlink()
    else:
        os.truncate(path, 20)
    result = cli(*SWEEP, "--seed", "1", "--out", "x", "--resume")
    assert result.exit_code == 2 and "cannot resume" in result.output, result.output
    assert len(list((tmp_path / "x.partial" / "cells").glob("*.summary.csv"))) == 2  # kept


# --- the stress test --------------------------------------------------------------------------
def _gradvar(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "gradvar", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_stress_concurrent_writers_and_corrupt_resumes(tmp_path):
    """20 pairs of concurrent writers (seeds 0 and 1) on one --out: the committed folder,
    if any, holds exactly one run's cells (one seed, all rows) and every loser exits 2 or 1
    with one line; then 20 rounds of interrupt, corrupt a cell, resume: always the
    uninterrupted results."""
    base = ["compare", "--mu", "-4:4:9", "--samples", "2e5", "--no-plot", "-q"]
    ref = {}
    for seed in ("0", "1"):
        proc = _gradvar(*base, "--seed", seed, "--out", f"ref{seed}", cwd=tmp_path)
        assert proc.communicate()[1] == "" and proc.returncode == 0
        ref[seed] = rows_without_timing(tmp_path / f"ref{seed}" / "results.csv")
    for trial in range(20):
        out = f"s{trial}"
        a = _gradvar(*base, "--seed", "0", "--out", out, cwd=tmp_path)
        time.sleep(0.05 * (trial % 5))
        b = _gradvar(*base, "--seed", "1", "--out", out, cwd=tmp_path)
        errs = [a.communicate()[1], b.communicate()[1]]
        codes = [a.returncode, b.returncode]
        assert "Traceback" not in "".join(errs)
        assert 0 in codes and set(codes) <= {0, 1, 2}, (codes, errs)
        got = rows_without_timing(tmp_path / out / "results.csv")
        seeds = {r["seed"] for r in got}
        assert len(seeds) == 1 and got == ref[seeds.pop()]
        assert not io.partial_path(tmp_path / out).exists()
    for trial in range(20):
        out = tmp_path / f"r{trial}"
        proc = _gradvar(*base, "--seed", "0", "--out", out.name, cwd=tmp_path)
        cells = io.partial_path(out) / "cells"
        deadline = time.monotonic() + 120
        while len(list(cells.glob(f"*{io.CHECK_SUFFIX}"))) < 1 + trial % 4:
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(2)
        proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue  # finished before the signal: nothing to resume
        assert proc.returncode == 130
        victim = sorted(cells.glob("*.csv"))[trial % 2]
        os.truncate(victim, victim.stat().st_size // (2 + trial % 3))
        proc = _gradvar(*base, "--seed", "0", "--out", out.name, "--resume", cwd=tmp_path)
        err = proc.communicate()[1]
        assert proc.returncode == 0 and "recomputing" in err, err
        assert rows_without_timing(out / "results.csv") == ref["0"]
        assert json.loads((out / "meta.json").read_text())["experiment"]["seed"] == 0


def test_an_error_after_finished_cells_keeps_them_for_resume(cli, tmp_path, monkeypatch):
    """Not only Ctrl-C: a run that fails (a lost scheduler, a plugin's error) once cells are
    finished keeps DIR.partial/ and says so; --resume completes it to the whole run's bytes."""
    from gradvar.studies import compare as api

    assert cli(*SWEEP, "--out", "whole").exit_code == 0
    real, calls = api.run_cell, []

    def failing(plan, cell, progress=None, *args, **kwargs):
        calls.append(cell)
        if len(calls) == 3:
            raise RuntimeError("the scheduler went away")
        return real(plan, cell, progress, *args, **kwargs)

    monkeypatch.setattr(api, "run_cell", failing)
    result = cli(*SWEEP, "--out", "x")
    assert result.exit_code == 1 and "the scheduler went away" in result.output
    assert "2 finished cell(s) kept in" in result.output and "--resume" in result.output
    assert (tmp_path / "x.partial" / "cells").is_dir() and not (tmp_path / "x").exists()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert cli(*SWEEP, "--out", "x", "--resume").exit_code == 0
    assert rows_without_timing(tmp_path / "x" / "results.csv") == rows_without_timing(
        tmp_path / "whole" / "results.csv"
    )


def test_an_error_before_any_finished_cell_leaves_nothing(cli, tmp_path, monkeypatch):
    from gradvar.studies import compare as api

    def failing(*args, **kwargs):
        raise RuntimeError("broken at once")

    monkeypatch.setattr(api, "run_cell", failing)
    result = cli(*SWEEP, "--out", "x")
    assert result.exit_code == 1 and "kept" not in result.output
    assert not (tmp_path / "x.partial").exists() and not (tmp_path / "x").exists()
