"""Multi-run experiment files ([[run]] tables) and the survey figure drawn from their folders."""

import json

import pytest

MULTI = """
figure = "survey"
command = "compare"
family = "normal"
estimator = "sf,reparam"
samples = 2000
seed = 3
sigma = 1.5

[[run]]
name = "quad"
objective = "quadratic"
sigma = 0.5
set = { k = "-1:1:3" }

[[run]]
name = "cos"
objective = "cosine"
set = { omega = "1:2:2" }
"""


def test_multi_run_file_runs_every_run_and_draws_one_figure(cli, tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "two.toml").write_text(MULTI)
    result = cli("run", "experiments/two.toml", "-q")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "two"
    assert json.loads((folder / "runs.json").read_text()) == {
        "figure": "survey",
        "runs": ["quad", "cos"],
    }
    for run, sigma in (("quad", 0.5), ("cos", 1.5)):  # shared keys, overridden by a run's own
        assert (folder / run / "results.csv").is_file()
        meta = json.loads((folder / run / "meta.json").read_text())
        assert meta["experiment"]["seed"] == 3 and float(meta["experiment"]["sigma"]) == sigma
    assert (folder / "survey.png").stat().st_size > 10_000
    before = (folder / "quad" / "results.csv").read_text()
    redraw = cli("plot", "results/two", "-q")
    assert redraw.exit_code == 0, redraw.output
    assert (folder / "quad" / "results.csv").read_text() == before  # nothing re-run


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t.replace('name = "cos"', 'name = "quad"'), "two runs are named 'quad'"),
        (lambda t: t.replace('name = "cos"\n', ""), "run 2 needs a 'name'"),
        (lambda t: t.replace('figure = "survey"', 'figure = "nope"'), "'figure' must be one of"),
        (lambda t: t.replace('objective = "cosine"', 'objective = "cosine"\nsigmaa = 2'), "sigmaa"),
        (
            lambda t: t.replace('objective = "cosine"', 'objective = "cosine"\nsigma = -1'),
            "run 'cos'",
        ),
    ],
)
def test_multi_run_file_errors_before_anything_runs(cli, tmp_path, edit, message):
    (tmp_path / "bad.toml").write_text(edit(MULTI))
    result = cli("run", "bad.toml")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()
