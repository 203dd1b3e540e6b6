"""The CLI and the Python API agree: the same arguments give the same results.csv (timing
columns aside), with the same defaults and the same validation."""

import pytest

import gradvar
from gradvar import io
from gradvar.spec import SpecError
from gradvar.studies.compare import TIMING_COLUMNS


def _csv_text(frame, tmp_path, name):
    frame = frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])
    path = tmp_path / f"{name}.csv"
    io.write_csv(frame, path)
    return path.read_text()


CASES = [
    (
        "compare-defaults",
        ["compare", "--samples", "2000", "--seed", "3"],
        lambda: gradvar.compare(samples=2000, seed=3),
    ),
    (
        "compare-sweep",
        [
            "compare",
            "--objective",
            "cosine",
            "--mu",
            "0,1",
            "--set",
            "omega=2",
            "--samples",
            "2000",
        ],
        lambda: gradvar.compare(objective="cosine", mu="0,1", omega=2, samples=2000),
    ),
    (
        "compare-categorical",
        [
            "compare",
            "--family",
            "categorical",
            "--tau",
            "0.5,1",
            "--baseline",
            "mean,loo",
            "--batch",
            "2",
            "--samples",
            "1000",
        ],
        lambda: gradvar.compare(
            family="categorical", tau="0.5,1", baseline="mean,loo", batch=2, samples=1000
        ),
    ),
    (
        "sweep-tau",
        ["sweep-tau", "--tau", "0.1,1", "--samples", "1000"],
        lambda: gradvar.sweep_tau(tau="0.1,1", samples=1000)[0],
    ),
    (
        "gumbel-max",
        ["gumbel-max", "--samples", "1000", "--seed", "2"],
        lambda: gradvar.gumbel_max(samples=1000, seed=2)[0],
    ),
    ("pick-one", ["pick-one", "--samples", "1000"], lambda: gradvar.pick_one(samples=1000)),
    (
        "train",
        ["train", "--problem", "bump", "--estimator", "exact,gumbel-softmax", "--steps", "2"],
        lambda: gradvar.train(problem="bump", estimator="exact,gumbel-softmax", steps=2),
    ),
]


@pytest.mark.parametrize("name,args,api", CASES, ids=[c[0] for c in CASES])
def test_cli_and_api_give_the_same_results_csv(cli, tmp_path, name, args, api):
    out = tmp_path / "cli"
    result = cli(*args, "--no-plot", "-q", "--out", out)
    assert result.exit_code == 0, result.output
    from_cli = io.read_csv(out / "results.csv")
    assert _csv_text(from_cli, tmp_path, "cli") == _csv_text(api(), tmp_path, "api")


def test_api_defaults_are_the_cli_defaults(cli, tmp_path):
    result = cli("compare", "--samples", "10", "--no-plot", "-q", "--out", tmp_path / "d")
    assert result.exit_code == 0, result.output
    cli_estimators = list(dict.fromkeys(io.read_csv(tmp_path / "d" / "results.csv").estimator))
    api_estimators = list(dict.fromkeys(gradvar.compare(samples=10).estimator))
    assert cli_estimators == api_estimators == ["sf", "sf-baseline", "reparam"]
    import inspect

    from gradvar import defaults

    for function in (gradvar.compare, gradvar.sweep_tau, gradvar.gumbel_max):
        assert inspect.signature(function).parameters["samples"].default == defaults.SAMPLES


def test_a_mistyped_keyword_is_an_unknown_argument():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'smaples'.*'samples'"):
        gradvar.compare(smaples=10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        gradvar.train(stepz=3)


def test_the_api_validates_like_the_cli(cli, tmp_path):
    result = cli("compare", "--sigma", "-1", "--out", tmp_path / "x")
    assert result.exit_code == 2
    with pytest.raises(SpecError) as err:
        gradvar.compare(sigma=-1, samples=10)
    assert str(err.value) in result.output
