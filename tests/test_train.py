"""Training trajectories: the first step against an independent finite-difference gradient,
the per-step variance against enumeration, directions, and the command's errors."""

import math

import numpy as np
import pytest

from gradvar.studies import train as training

Z_TOL = 5.0  # standard errors; two-sided false alarm about 6e-7 per check under normality


def bump_objective(m, x=np.arange(5.0), w=np.arange(1.0, 6.0)):
    """E[w . onehot] = w . softmax(exp(-(x - m)^2)), written independently of the package."""
    o = np.exp(-((x - m) ** 2))
    p = np.exp(o - o.max())
    p /= p.sum()
    return float(w @ p)


def test_bump_exact_first_step_is_gradient_ascent_with_the_true_gradient():
    df = training.train("bump", estimator="exact", steps=2, lr=1.0)
    m = df[df["param"] == "m"].set_index("step")
    h = 1e-6
    fd = (bump_objective(2 + h) - bump_objective(2 - h)) / (2 * h)
    assert m.loc[0, "grad"] == pytest.approx(fd, rel=1e-7)
    assert m.loc[1, "value"] == pytest.approx(2.0 + fd, rel=1e-9)  # ascent, lr 1
    assert m.loc[0, "objective"] == pytest.approx(bump_objective(2.0), rel=1e-12)
    assert m.loc[1, "objective"] > m.loc[0, "objective"]
    assert m.loc[0, "grad_var"] == 0.0


def test_bump_train_positions_updates_x_with_the_true_gradient():
    df = training.train("bump", estimator="exact", steps=1, lr=1.0, train_positions=True)
    x0 = np.arange(5.0)
    h = 1e-6
    for j in range(5):
        e = np.eye(5)[j] * h
        fd = (bump_objective(2.0, x0 + e) - bump_objective(2.0, x0 - e)) / (2 * h)
        row = df[(df["param"] == f"x[{j}]") & (df["step"] == 0)].iloc[0]
        assert row["grad"] == pytest.approx(fd, rel=1e-6, abs=1e-12)


def test_bernoulli_toy_exact_descends_with_the_tiny_true_gradient():
    df = training.train("bernoulli-toy", estimator="exact", seed="0", steps=50)
    first = df[df["step"] == 0].iloc[0]
    assert first["grad"] == pytest.approx(0.0005, rel=1e-9)  # (1 - 2t) p (1 - p) at logit 0
    assert first["objective"] == pytest.approx(0.5 * 0.501**2 + 0.5 * 0.499**2, rel=1e-12)
    last = df[df["step"] == 50].iloc[0]
    assert last["value"] < -0.4 and last["objective"] < first["objective"]  # Adam, descent


def test_grad_var_matches_the_exact_score_function_variance():
    """Near logit 0 the sf variance is E[f^2 (b - p)^2] - g^2 = 0.015625... (enumeration);
    averaging grad_var over seeds and early steps gives a precise check."""
    df = training.train("bernoulli-toy", estimator="sf", seed="0,1,2,3", steps=30)
    early = df[df["step"] < 30]
    assert early["value"].abs().max() < 0.5  # still near logit 0
    p = 1 / (1 + np.exp(-early["value"].to_numpy()))
    f1, f0 = 0.501**2, 0.499**2
    exact = p * (f1 * (1 - p)) ** 2 + (1 - p) * (f0 * p) ** 2 - ((f1 - f0) * p * (1 - p)) ** 2
    ratio = early["grad_var"].to_numpy() / exact
    se = ratio.std(ddof=1) / math.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < Z_TOL * se
    assert abs(ratio.mean() - 1.0) < 0.05  # and sharp enough to reject a factor of 2


def test_the_loo_baseline_needs_and_gets_batch_two():
    df = training.train("bernoulli-toy", estimator="sf-baseline", baseline="loo", seed="0", steps=3)
    assert set(df["batch"]) == {2}


def test_same_seed_same_trajectory():
    a = training.train("bernoulli-toy", estimator="gumbel-softmax", seed="3", steps=20)
    b = training.train("bernoulli-toy", estimator="gumbel-softmax", seed="3", steps=20)
    c = training.train("bernoulli-toy", estimator="gumbel-softmax", seed="4", steps=20)
    assert a.equals(b) and not a.equals(c)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--problem", "bumpy"], "did you mean 'bump'"),
        (["--problem", "bump", "--estimator", "reparam"], "capability"),
        (["--problem", "bernoulli-toy", "--train-positions"], "--train-positions"),
        (["--problem", "bump", "--lr", "-1"], "lr"),
        (["--problem", "bump", "--steps", "x"], "steps"),
        (["--problem", "bump", "--tau", "0"], "tau"),
        (["--problem", "bernoulli-toy", "--eta", "inf"], "eta"),
        (["--problem", "bernoulli-toy", "--eta", "1,2"], "eta"),
        (["--problem", "bump", "--estimator", "relax"], "one-bit"),
    ],
)
def test_train_bad_input_exits_2_and_writes_nothing(cli, tmp_path, args, message):
    result = cli("train", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "results").exists()


def test_train_command_prints_m_and_writes_the_folder(cli, tmp_path):
    result = cli(
        "train",
        "--problem",
        "bump",
        "--estimator",
        "exact",
        "--steps",
        5,
        "--lr",
        1,
        "--out",
        "out",
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("m = ") == 6 and "m = 2.000000" in result.output
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0].split(",")
    for column in [
        "problem",
        "estimator",
        "seed",
        "step",
        "param",
        "value",
        "objective",
        "grad",
        "grad_var",
    ]:
        assert column in header
    assert (tmp_path / "out" / "training.png").stat().st_size > 10_000


def test_plot_redraws_a_training_folder(cli, tmp_path):
    assert (
        cli(
            "train",
            "--problem",
            "bump",
            "--estimator",
            "exact",
            "--steps",
            2,
            "--out",
            "t",
            "--no-plot",
        ).exit_code
        == 0
    )
    assert not (tmp_path / "t" / "training.png").exists()
    result = cli("plot", "t")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t" / "training.png").stat().st_size > 10_000
