"""gradvar run: TOML and meta.json experiments, key validation, replacing folders."""

import json
from pathlib import Path

import pytest
from helpers import rows_without_timing

from gradvar.studies import STUDIES, experiments

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SMALL = """command = "compare"
estimator = "sf,reparam"
mu = "0,1"
samples = 3000
seed = 5
no-plot = true

[set]
k = 0.5
"""


def test_run_writes_results_named_after_the_file_and_meta_reruns_identically(cli, tmp_path):
    exp = write(tmp_path / "experiments" / "small.toml", SMALL)
    result = cli("run", exp, "-q")
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "small"
    assert (out / "results.csv").exists() and (out / "meta.json").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["experiment"]["command"] == "compare" and meta["experiment"]["seed"] == 5
    again = cli("run", out / "meta.json", "--out", "rerun", "-q")
    assert again.exit_code == 0, again.output
    assert rows_without_timing(out / "results.csv") == rows_without_timing(
        tmp_path / "rerun" / "results.csv"
    )


def test_run_replaces_an_existing_folder_only_when_complete(cli, tmp_path, monkeypatch):
    exp = write(tmp_path / "small.toml", SMALL)
    assert cli("run", exp, "-q").exit_code == 0
    out = tmp_path / "results" / "small"
    marker = out / "old-marker"
    marker.write_text("old")

    from gradvar.studies import compare as api

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(api, "run_plan", boom)
    result = cli("run", exp, "-q")
    assert result.exit_code == 1
    assert marker.exists()  # the old folder is untouched
    assert not (tmp_path / "results" / "small.partial").exists()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert cli("run", exp, "-q").exit_code == 0
    assert not marker.exists()  # replaced by the complete new folder


@pytest.mark.parametrize(
    "text, message",
    [
        ('estimator = "sf"\n', "missing key 'command'"),
        ('command = "comparee"\n', "did you mean 'compare'"),
        ('command = "compare"\nestimatr = "sf"\n', "unknown key 'estimatr'"),
        ('command = "compare"\nsigma = -1\n', "sigma must be > 0"),
        ('command = "compare"\nestimator = "reparam"\nfamily = "categorical"\n', "capability"),
        ('command = "compare"\n[set]\nq = 1\n', "no parameter 'q'"),
        ('command = "train"\nproblem = "bump"\nout = "x"\n', "unknown key 'out'"),
        ("command = [1\n", "cannot read"),
    ],
)
def test_bad_experiments_name_the_file_and_exit_2(cli, tmp_path, text, message):
    exp = write(tmp_path / "bad.toml", text)
    result = cli("run", exp)
    assert result.exit_code == 2, result.output
    assert "bad.toml" in result.output and message in result.output
    assert not (tmp_path / "results").exists()


def test_every_file_is_checked_before_anything_runs(cli, tmp_path):
    good = write(tmp_path / "good.toml", SMALL)
    bad = write(tmp_path / "bad.toml", 'command = "compare"\nnope = 1\n')
    result = cli("run", good, bad)
    assert result.exit_code == 2
    assert not (tmp_path / "results").exists()


def test_run_all_runs_every_toml_in_experiments(cli, tmp_path):
    write(tmp_path / "experiments" / "a.toml", SMALL)
    write(
        tmp_path / "experiments" / "b.toml",
        'command = "pick-one"\nlists = ["1,2,3"]\nsamples = 100\nno-plot = true\n',
    )
    result = cli("run", "--all", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "a" / "results.csv").exists()
    assert (tmp_path / "results" / "b" / "results.csv").exists()
    assert "Time per experiment" in result.output


def test_usage_errors_of_run_itself(cli, tmp_path):
    assert cli("run").exit_code == 2
    assert cli("run", "--all").exit_code == 2  # no experiments/ here
    a, b = write(tmp_path / "a.toml", SMALL), write(tmp_path / "b.toml", SMALL)
    result = cli("run", a, b, "--out", "x")
    assert result.exit_code == 2 and "exactly one FILE" in result.output


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_canonical_experiment_files_are_valid(path):
    """Every committed experiment names a known command and only its options."""
    for experiment in experiments.load_all([path]):  # keys and values (every [[run]])
        assert experiment.data["command"] in STUDIES


def test_ctrl_c_keeps_finished_cells_and_resume_continues(cli, tmp_path, monkeypatch):
    """Interrupt a 4-cell sweep after 2 cells: only DIR.partial/ remains; --resume runs the
    other 2 cells only and gives the same results.csv as an uninterrupted run."""
    from gradvar.studies import compare as api

    exp = write(tmp_path / "sweep.toml", SMALL.replace('mu = "0,1"', 'mu = "0,1,2,3"'))
    assert cli("run", exp, "--out", "whole", "-q").exit_code == 0

    real = api.run_cell
    calls = []

    def interrupted(plan, cell, progress=None, *args, **kwargs):
        calls.append(cell.family_values["mu"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(plan, cell, progress, *args, **kwargs)

    monkeypatch.setattr(api, "run_cell", interrupted)
    result = cli("run", exp, "-q")
    assert result.exit_code == 130
    assert "--resume" in result.output
    partial = tmp_path / "results" / "sweep.partial"
    assert partial.is_dir() and not (tmp_path / "results" / "sweep").exists()
    assert len(list((partial / "cells").glob("*.summary.csv"))) == 2

    calls.clear()
    result = cli("run", exp, "-q", "--resume")
    assert result.exit_code == 0, result.output
    assert calls == [2.0, 3.0]  # the finished cells were not run again
    done = tmp_path / "results" / "sweep"
    assert not partial.exists() and sorted(p.name for p in done.iterdir()) == [
        "meta.json",
        "results.csv",
        "summary.csv",
    ]
    assert rows_without_timing(done / "results.csv") == rows_without_timing(
        tmp_path / "whole" / "results.csv"
    )


def test_resume_refuses_a_partial_of_another_experiment(cli, tmp_path, monkeypatch):
    from gradvar.studies import compare as api

    exp = write(tmp_path / "sweep.toml", SMALL)

    def stop(plan, cell, progress=None, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run_cell", stop)
    assert cli("run", exp, "-q").exit_code == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    write(exp, SMALL.replace("seed = 5", "seed = 6"))
    result = cli("run", exp, "-q", "--resume")
    assert result.exit_code == 2 and "different experiment" in result.output
    assert (tmp_path / "results" / "sweep.partial").exists()  # kept for the user to decide


def test_python_api_run_and_train(tmp_path, monkeypatch):
    import gradvar

    monkeypatch.chdir(tmp_path)
    exp = write(tmp_path / "api.toml", SMALL)
    target = gradvar.run(exp)
    assert target == Path("results") / "api" and (target / "results.csv").exists()
    table = gradvar.train(problem="bump", estimator="exact", steps=1)
    assert list(table["step"].unique()) == [0, 1]
