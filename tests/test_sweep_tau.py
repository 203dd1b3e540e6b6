"""gradvar.sweep_tau: the temperature grid, shared noise, the bias floor, the best tau."""

import numpy as np
import pytest
from helpers import Z_TOL  # 5 standard errors: 5.7e-7 false alarms per check

import gradvar
from gradvar import spec, truth
from gradvar.cli import sweep_tau as cli_sweep_tau
from gradvar.studies import sweep_tau as sweeptau


@pytest.fixture(scope="module")
def small():
    return gradvar.sweep_tau(tau="log:0.05:5:5", samples=20_000, seed=2)


def test_default_grid_has_16_log_spaced_points_from_0_01_to_10():
    swept, refs = sweeptau.plans({})
    taus = [c.tau for c in swept.cells]
    np.testing.assert_allclose(taus, np.geomspace(0.01, 10, 16))
    assert [e.name for e in swept.estimators] == [
        "gumbel-softmax",
        "st-gumbel",
        "gumbel-rao",
        "st",
        "reinmax",
    ]
    assert [e.name for e in refs.estimators] == ["sf", "sf-baseline"]
    assert len(refs.cells) == 1  # the references run once, not once per tau
    assert swept.cells[0].objective.name == "squared"
    np.testing.assert_array_equal(swept.cells[0].family_values["logits"], [2.0, 0.5, 0.1])


def test_summary_has_one_row_per_tau_and_estimator_plus_the_references(small):
    results, summary = small
    assert len(summary) == 5 * 5 + 2
    refs = summary[summary.role == "reference"]
    assert sorted(refs.estimator) == ["sf", "sf-baseline"] and refs.tau.isna().all()
    assert len(results) == (5 * 5 + 2) * 3  # three logits coordinates
    for col in (
        "total_var",
        "bias_sq_norm",
        "mse",
        "mse_ci_low",
        "mse_ci_high",
        "bias_sq_noise_floor",
        "bias_sq_debiased",
    ):
        assert col in summary
    np.testing.assert_allclose(summary.bias_sq_noise_floor, summary.total_var / summary.n)
    np.testing.assert_allclose(
        summary.bias_sq_debiased, summary.bias_sq_norm - summary.total_var / summary.n
    )


def test_every_estimator_sees_the_same_noise_as_in_compare(small):
    results, _ = small
    one = gradvar.compare(
        family="categorical",
        estimator="gumbel-softmax,sf",
        tau=results.tau.dropna().iloc[0],
        samples=20_000,
        seed=2,
    )
    for est in ("gumbel-softmax", "sf"):
        mine = results[
            (results.estimator == est) & ((results.tau == one.tau.iloc[0]) | results.tau.isna())
        ]
        np.testing.assert_array_equal(
            mine.grad_mean.to_numpy()[:3], one[one.estimator == est].grad_mean.to_numpy()
        )


def test_best_tau_minimises_the_mse_and_flags_the_grid_edge(small):
    _, summary = small
    best = sweeptau.best_tau(summary)
    assert list(best.estimator) == [
        "gumbel-softmax",
        "st-gumbel",
        "gumbel-rao",
        "st",
        "reinmax",
        "sf",
        "sf-baseline",
    ]
    for _, row in best[best.role == "swept"].iterrows():
        rows = summary[summary.estimator == row.estimator]
        assert row.mse == rows.mse.min() and row.tau == rows.loc[rows.mse.idxmin(), "tau"]
    text = cli_sweep_tau.format_best(best)
    assert "gumbel-softmax" in text and "sf-baseline" in text and "grid tau" in text
    # a grid that stops before the optimum (about 1.6): the minimum sits on its edge
    _, edge = gradvar.sweep_tau(tau="0.01,0.1", reference="", samples=2000)
    assert sweeptau.best_tau(edge).at_grid_edge.all()
    assert "grid edge" in cli_sweep_tau.format_best(sweeptau.best_tau(edge))


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_debiased_squared_bias_matches_the_exact_one_for_two_classes(tau):
    """Two classes: the true squared bias ||relaxed-mean - exact||^2 is known by quadrature."""
    _, summary = gradvar.sweep_tau(
        logits="1,0", tau=[tau], estimator="gumbel-softmax", reference="", samples=100_000, seed=4
    )
    cell = spec.plan(family="categorical", logits="1,0", estimator="gumbel-softmax", tau=tau).cells[
        0
    ]
    true_sq = float(np.sum((truth.relaxed_gradient(cell) - truth.exact_gradient(cell)) ** 2))
    row = summary.iloc[0]
    se = (row.bias_sq_norm_ci_high - row.bias_sq_norm_ci_low) / (2 * 1.96)
    assert abs(row.bias_sq_debiased - true_sq) < Z_TOL * se, (row.bias_sq_debiased, true_sq, se)
    # unbiased for the relaxed objective: the squared distance to the relaxed gradient is
    # pure noise, about total_var / n (a chi-square with one degree of freedom, times that)
    assert row.relaxed_bias_sq_norm < Z_TOL**2 * row.bias_sq_noise_floor


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(family="normal"), "relax"),
        (dict(estimator="sf"), "does not use tau"),
        (dict(reference="gumbel-softmax"), "depends on tau"),
        (dict(tau="0.1,0"), "tau"),
        (dict(family="bernoulli", logit="0,1"), "sweeps tau only"),
        (dict(estimator=""), "estimator: empty list"),
        (dict(estimator="gumbel-softmx"), "did you mean"),
    ],
)
def test_bad_sweeps_are_spec_errors(kw, match):
    with pytest.raises(spec.SpecError, match=match):
        sweeptau.plans(kw)


@pytest.mark.slow
def test_default_sweep_has_an_interior_optimum_and_variance_like_one_over_tau():
    _, summary = gradvar.sweep_tau(samples=1_000_000)
    best = sweeptau.best_tau(summary)
    swept = best[best.role == "swept"]
    # reinmax's MSE still falls at tau = 10 on this problem: its optimum lies beyond the grid
    assert list(swept.estimator[swept.at_grid_edge]) == ["reinmax"]
    refs = best[best.role == "reference"]
    assert swept.mse.max() < refs.mse.min()  # at its best tau the relaxation wins here
    for est in ("gumbel-softmax", "st-gumbel"):
        rows = summary[(summary.estimator == est) & (summary.tau <= 0.1)]
        slope = np.polyfit(np.log(rows.tau), np.log(rows.total_var), 1)[0]
        assert -1.2 < slope < -0.8, (est, slope)  # variance grows roughly like 1 / tau
        big = summary[(summary.estimator == est)].sort_values("tau")
        assert np.all(np.diff(big.bias_sq_debiased[big.tau >= 0.1]) > 0)  # bias grows with tau


# --- the command ---------------------------------------------------------------------------
def test_command_writes_the_folder_and_prints_the_best_tau(cli, tmp_path):
    out = tmp_path / "sweep"
    result = cli("sweep-tau", "--tau", "log:0.1:10:4", "--samples", "3000", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert "grid tau" in result.output and "gumbel-softmax" in result.output
    assert "sf-baseline (mean)" in result.output
    files = {p.name for p in out.iterdir()}
    assert files == {
        "results.csv",
        "summary.csv",
        "best_tau.csv",
        "meta.json",
        "bias_variance_mse_vs_tau.png",
        "bias_variance_mse_vs_tau.svg",
    }
    from gradvar import io

    summary = io.read_csv(out / "summary.csv")
    assert len(summary) == 4 * 5 + 2
    for col in (
        "tau",
        "total_var",
        "bias_sq_norm",
        "mse",
        "mse_ci_low",
        "mse_ci_high",
        "total_var_ci_low",
        "bias_sq_norm_ci_high",
        "bias_sq_debiased",
        "logits",
    ):
        assert col in summary
    results = io.read_csv(out / "results.csv")
    assert {"relaxed_grad", "exact_grad", "nonfinite", "tau"} <= set(results.columns)
    import json

    meta = json.loads((out / "meta.json").read_text())
    exp = meta["experiment"]
    assert exp["command"] == "sweep-tau" and len(exp["tau"]) == 4
    assert exp["estimator"] == ["gumbel-softmax", "st-gumbel", "gumbel-rao", "st", "reinmax"]
    assert exp["reference"] == ["sf", "sf-baseline"] and exp["logits"] == [2.0, 0.5, 0.1]
    assert exp["set"] == {"w": [1.0, 2.0, 3.0], "t": 0.499}


def test_command_is_reproducible_and_runs_from_its_meta(cli, tmp_path):
    import json

    from gradvar.cli import sweep_tau

    args = (
        "sweep-tau",
        "--tau",
        "0.3,3",
        "--samples",
        "2000",
        "--quiet",
        "--no-plot",
        "--family",
        "bernoulli",
        "--reference",
        "none",
        "--set",
        "t=0.4",
    )
    assert cli(*args, "--out", tmp_path / "a").exit_code == 0
    assert cli(*args, "--out", tmp_path / "b").exit_code == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    sweep_tau.execute(meta["experiment"], out=tmp_path / "c", quiet=True)
    from gradvar import io

    frames = [
        io.read_csv(tmp_path / d / "summary.csv").drop(columns=["seconds", "estimates_per_s"])
        for d in "abc"
    ]
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
    assert list(frames[0].estimator.unique()) == [
        "gumbel-softmax",
        "st-gumbel",
        "gumbel-rao",
        "st",
        "reinmax",
    ]
    assert (frames[0].t == 0.4).all()


@pytest.mark.parametrize(
    "args,message",
    [
        (("--family", "normal"), "relax"),
        (("--tau", "0.1,-1"), "tau"),
        (("--estimator", "sf"), "does not use tau"),
        (("--logits", "1"), "2 classes"),
        (("--set", "q=1"), "no parameter 'q'"),
    ],
)
def test_command_bad_input_exits_2_and_writes_nothing(cli, tmp_path, args, message):
    result = cli("sweep-tau", *args, "--out", tmp_path / "x")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x").exists()


def test_fitted_best_tau_is_the_vertex_with_the_jackknife_interval_of_the_replicates():
    """log MSE an exact parabola with vertex log 0.7 and each delete-one replicate an exact
    parabola with vertex log 0.7 + d_k: the fit recovers the vertices exactly, so the
    interval is log 0.7 -+ t_{31} sqrt(31/32 sum_k (d_k - mean d)^2), computed here by hand."""
    from scipy import stats as sps

    taus = np.geomspace(0.1, 5, 9)
    x = np.log(taus)
    d = np.random.default_rng(1).normal(0, 0.01, 32)
    mse = np.exp(2 * (x - np.log(0.7)) ** 2 + 1)
    reps = np.exp(2 * (x[:, None] - np.log(0.7) - d[None, :]) ** 2 + 1)
    best, low, high = sweeptau.fitted_best_tau(taus, mse, reps)
    half = sps.t.ppf(0.975, 31) * np.sqrt(31 / 32 * np.sum((d - d.mean()) ** 2))
    assert best == pytest.approx(0.7, rel=1e-9)
    assert low == pytest.approx(0.7 * np.exp(-half), rel=1e-9)
    assert high == pytest.approx(0.7 * np.exp(half), rel=1e-9)
    # the wrong rule, the plain spread of the replicates (no jackknife factor g - 1), would
    # be sqrt(31) = 5.6x too narrow
    assert np.log(high / low) / 2 > 5 * sps.t.ppf(0.975, 31) * np.std(d)
    # a fit without a minimum (a monotone MSE) is NaN, never a grid point in disguise
    assert np.isnan(sweeptau.fitted_best_tau(taus, taus, reps * 0 + taus[:, None])[0])
    # without replicates (an old folder): the vertex, no interval
    best, low, high = sweeptau.fitted_best_tau(taus, mse, np.full((9, 1), np.nan))
    assert best == pytest.approx(0.7, rel=1e-9) and np.isnan(low) and np.isnan(high)


def test_the_mse_replicates_give_the_mse_interval(small):
    """summary.csv's mse_jackknife holds the 32 delete-one-group MSEs: their jackknife
    standard error times t_{31} is the half-width of the MSE interval."""
    from scipy import stats as sps

    _, summary = small
    assert list(summary.columns)[-1] == "mse_jackknife"
    for _, row in summary.iterrows():
        reps = np.array([float(v) for v in row.mse_jackknife.split(",")])
        assert len(reps) == 32
        se = np.sqrt(31 / 32 * np.sum((reps - reps.mean()) ** 2))
        assert row.mse_ci_high - row.mse == pytest.approx(sps.t.ppf(0.975, 31) * se, rel=1e-9)


def _best_gumbel_softmax(samples, seed=0):
    _, summary = gradvar.sweep_tau(
        logits="1,0",
        tau="log:0.1:10:13",
        estimator="gumbel-softmax",
        reference="",
        samples=samples,
        seed=seed,
    )
    return summary, sweeptau.best_tau(summary).iloc[0]


def test_the_best_tau_interval_shrinks_like_one_over_root_n():
    """16x the estimates: the interval (log width) about 4x narrower; the jackknife's own
    error over 32 groups (about 13% each) leaves the ratio well inside (2, 8)."""
    _, few = _best_gumbel_softmax(5_000)
    _, many = _best_gumbel_softmax(80_000)
    ratio = np.log(few.best_tau_high / few.best_tau_low) / np.log(
        many.best_tau_high / many.best_tau_low
    )
    assert 2 < ratio < 8, ratio
    assert many.best_tau_low < many.best_tau < many.best_tau_high


def _exact_vertex(summary, results):
    """The vertex of the parabola through the exact log MSE at the fitted grid points (two
    classes: the relaxed gradient and the exact variance by quadrature)."""
    results = results.assign(
        exact_mse=(results.relaxed_grad - results.exact_grad) ** 2 + results.exact_var
    )
    exact = results.groupby("tau", sort=True).exact_mse.sum().to_numpy()
    rows = summary.sort_values("tau")
    i = int(np.argmin(rows.mse.to_numpy()))
    lo, hi = max(0, i - sweeptau.FIT_POINTS), i + sweeptau.FIT_POINTS + 1
    x = np.log(rows.tau.to_numpy()[lo:hi])
    return np.exp(sweeptau._vertex(x, np.log(exact[lo:hi])))


@pytest.mark.slow
def test_the_best_tau_interval_covers_the_exact_vertex_95_percent_of_the_time():
    """40 seeds: the 95% interval covers the vertex through the exact MSE curve in about 38;
    33 or fewer has probability 3e-3 under correct coverage (binomial)."""
    hits = 0
    for seed in range(40):
        results, summary = gradvar.sweep_tau(
            logits="1,0",
            tau="log:0.1:10:13",
            estimator="gumbel-softmax",
            reference="",
            samples=20_000,
            seed=seed,
        )
        best = sweeptau.best_tau(summary).iloc[0]
        hits += bool(best.best_tau_low <= _exact_vertex(summary, results) <= best.best_tau_high)
    assert hits >= 34, hits


def test_best_tau_columns_are_appended(small):
    _, summary = small
    best = sweeptau.best_tau(summary)
    assert list(best.columns[-3:]) == ["best_tau", "best_tau_low", "best_tau_high"]
    swept = best[best.role == "swept"]
    inside = swept.dropna(subset=["best_tau_low"])
    assert (
        (inside.best_tau_low <= inside.best_tau) & (inside.best_tau <= inside.best_tau_high)
    ).all()
    assert best[best.role == "reference"].best_tau.isna().all()
