"""The Gumbel-Max demonstration: frequencies against softmax, the relaxed samples."""

import numpy as np
import pytest
from helpers import Z_TOL  # 5 standard errors: 5.7e-7 false alarms per check
from scipy import special, stats

import gradvar
from gradvar import spec
from gradvar.studies.gumbel_max import chi_square

ALPHA = 1e-4  # significance of the chi-square tests: one false alarm in 10^4 runs


def test_frequencies_follow_softmax_and_the_table_is_consistent():
    logits = np.array([2.0, 0.5, 0.1, -1.0])
    res, summ, _ = gradvar.gumbel_max(logits=logits, samples=200_000, seed=1)
    assert list(res.columns[:5]) == ["class", "logit", "prob", "count", "freq"]
    assert res["count"].sum() == 200_000
    np.testing.assert_allclose(res["prob"], special.softmax(logits), rtol=1e-12)
    np.testing.assert_array_equal(res["freq"], res["count"] / 200_000)
    s = summ.iloc[0]
    ref = stats.chisquare(res["count"], 200_000 * special.softmax(logits))
    assert s["chi2"] == pytest.approx(ref.statistic) and s["p_value"] == pytest.approx(ref.pvalue)
    assert s["p_value"] > ALPHA and s["dof"] == 3 and s["pooled"] == 0


def test_the_chi_square_rejects_a_wrong_sampler():
    """argmax(logits / 2 + G) samples softmax(logits / 2): the same test must reject it."""
    logits = np.array([2.0, 0.5, 0.1, -1.0])
    res, _, _ = gradvar.gumbel_max(logits=logits / 2, samples=200_000, seed=1)
    assert chi_square(res["count"], special.softmax(logits))[1] < ALPHA


def test_same_seed_same_counts_and_chunking_does_not_matter(monkeypatch):
    a, _, ra = gradvar.gumbel_max(samples=5000, seed=3)
    b, _, rb = gradvar.gumbel_max(samples=5000, seed=3)
    assert a.equals(b) and ra.equals(rb)
    c, _, _ = gradvar.gumbel_max(samples=5000, seed=4)
    assert not a["count"].equals(c["count"])
    monkeypatch.setattr("gradvar.studies.gumbel_max.CHUNK_VALUES", 7 * 3)  # 7 draws per chunk
    d, _, rd = gradvar.gumbel_max(samples=5000, seed=3)
    assert a.equals(d)
    np.testing.assert_allclose(ra["value"], rd["value"], rtol=1e-12)


def test_relaxed_samples_expectations_and_limits():
    logits = np.array([1.0, 0.0, -0.5])
    p = special.softmax(logits)
    _, _, rel = gradvar.gumbel_max(
        logits=logits, samples=100_000, seed=2, tau=[1e-3, 0.5, 1e3], singles=4
    )
    assert set(rel.columns) >= {"tau", "kind", "sample", "class", "value"}
    mean = rel[rel.kind == "mean"]
    assert len(mean) == 3 * 3 and len(rel[rel.kind == "sample"]) == 3 * 3 * 4
    cold = mean[mean.tau == 1e-3]  # tau -> 0: E[y] -> softmax(logits)
    assert (np.abs(cold["value"].to_numpy() - p) < Z_TOL * cold["sem"].to_numpy() + 1e-3).all()
    hot = mean[mean.tau == 1e3]  # tau -> infinity: E[y] -> uniform
    np.testing.assert_allclose(hot.value, 1 / 3, atol=2e-3)
    warm = mean[mean.tau == 0.5]  # in between it is neither (the relaxation's bias)
    assert (np.abs(warm["value"].to_numpy() - p) > Z_TOL * warm["sem"].to_numpy()).any()
    samples = rel[rel.kind == "sample"]
    sums = samples.groupby(["tau", "sample"]).value.sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-12)
    # the same noise at every tau: the winning class of each single sample does not change
    winners = samples.loc[samples.groupby(["tau", "sample"]).value.idxmax()]
    assert (winners.groupby("sample")["class"].nunique() == 1).all()
    cold_max = samples[samples.tau == 1e-3].groupby("sample").value.max()
    assert (cold_max > 0.99).all()


def test_extreme_logits_pool_the_impossible_classes():
    res, summ, rel = gradvar.gumbel_max(
        logits="1000,-1000,0,999", samples=50_000, seed=0, tau=[1e-3, 10]
    )
    assert res.loc[[1, 2], "count"].sum() == 0
    s = summ.iloc[0]
    assert s["pooled"] == 2 and s["dof"] == 1 and s["p_value"] > ALPHA
    assert np.isfinite(rel["value"]).all() and np.isfinite(rel.loc[rel.kind == "mean", "sem"]).all()


def test_logits_near_the_largest_double_give_the_one_hot_limit_at_small_tau():
    """(o + G) / tau overflowed before the max was subtracted: inf - inf = NaN at tau 0.1."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow warning: exp(-inf) = 0 is exact
        _, _, rel = gradvar.gumbel_max(logits="1e308,0", samples=2_000, seed=0, tau=[0.1, 1])
        _, _, far = gradvar.gumbel_max(logits="1.7e308,-1.7e308", samples=200, seed=0, tau=1)
    means = rel[rel.kind == "mean"]
    assert np.isfinite(means["value"]).all()
    np.testing.assert_array_equal(means.sort_values(["tau", "class"])["value"], [1, 0, 1, 0])
    assert far[far.kind == "mean"].sort_values("class")["value"].tolist() == [1, 0]


def test_chi_square_edge_cases():
    assert chi_square([5, 0, 1], [0.5, 0.0, 0.5])[1] > 0  # a zero-probability class never seen
    assert chi_square([5, 1, 1], [0.5, 0.0, 0.5])[1] == 0.0  # the impossible happened
    stat, pvalue, dof, pooled = chi_square([1000, 0], [1.0, 0.0])
    assert (pvalue, dof) == (1.0, 0)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(logits="1"), "2 classes"),
        (dict(tau="0.5,0"), "tau"),
        (dict(samples=0), "samples"),
        (dict(logits="1,nan"), "logits"),
    ],
)
def test_bad_input_is_a_spec_error(kw, match):
    with pytest.raises(spec.SpecError, match=match):
        gradvar.gumbel_max(**kw)


# --- the command ---------------------------------------------------------------------------
def test_command_writes_the_contract_files(cli, tmp_path):
    from gradvar import io

    out = tmp_path / "gm"
    result = cli("gumbel-max", "--samples", "20000", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert "chi-square" in result.output and "p-value" in result.output
    assert {p.name for p in out.iterdir()} == {
        "results.csv",
        "summary.csv",
        "relaxed.csv",
        "meta.json",
        "gumbel_max_frequencies.png",
        "relaxed_samples.png",
    }
    results = io.read_csv(out / "results.csv")
    assert list(results.columns[:5]) == ["class", "logit", "prob", "count", "freq"]
    summary = io.read_csv(out / "summary.csv")
    assert {"chi2", "p_value"} <= set(summary.columns)
    relaxed = io.read_csv(out / "relaxed.csv")
    assert sorted(relaxed.tau.unique()) == [0.1, 0.5, 1.0, 10.0]
    # same seed, same bytes
    again = tmp_path / "gm2"
    cli("gumbel-max", "--samples", "20000", "--quiet", "--no-plot", "--out", again)
    for name in ("results.csv", "summary.csv", "relaxed.csv"):
        assert (out / name).read_bytes() == (again / name).read_bytes()


@pytest.mark.parametrize(
    "args,message",
    [(("--logits", "3"), "2 classes"), (("--tau", "0"), "tau"), (("--samples", "0"), "samples")],
)
def test_command_bad_input_exits_2(cli, tmp_path, args, message):
    result = cli("gumbel-max", *args, "--out", tmp_path / "x")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x").exists()
