"""Estimators that ignore a swept option run once per distinct value of the options they
read, their other option columns empty (REFERENCE 6b): the plan, compare, `gradvar run`
on a TOML file, its console table, plots and resume, and sweep-tau."""

import itertools

from helpers import rows_without_timing

import gradvar
from gradvar import io
from gradvar.studies import compare as api

# bernoulli at logit 0.5, a 2 x 2 sweep of tau and eta: sf and arm read neither option,
# gumbel-softmax reads tau, rebar reads both
SWEEP = dict(
    family="bernoulli",
    logit=0.5,
    estimator="sf,arm,gumbel-softmax,rebar",
    tau="0.5,1",
    eta="0.5,1",
    samples=4000,
    seed=3,
)
TOML = """command = "compare"
family = "bernoulli"
logit = 0.5
estimator = "sf,arm,gumbel-softmax,rebar"
tau = "0.5,1"
eta = "0.5,1"
samples = 4000
seed = 3
"""


def test_the_plan_runs_each_estimator_once_per_value_of_the_options_it_reads():
    plan = api.plan_of(SWEEP)
    names = [[e.name for e in plan.estimators_in(i)] for i in range(len(plan.cells))]
    # cells in order (tau, eta) = (0.5, 0.5), (0.5, 1), (1, 0.5), (1, 1)
    assert names == [
        ["sf", "arm", "gumbel-softmax", "rebar"],
        ["rebar"],
        ["gumbel-softmax", "rebar"],
        ["rebar"],
    ]
    # the rule from the registry alone: every estimator meets each combination of the
    # options it reads exactly once
    for est in plan.estimators:
        read = [o.name for o in est.cell_options]
        met = [
            tuple(plan.cells[i].options[n] for n in read)
            for i in range(len(plan.cells))
            if est in plan.estimators_in(i)
        ]
        axes = [sorted({c.options[n] for c in plan.cells}) for n in read]
        assert sorted(met) == sorted(itertools.product(*axes)), est.name


def test_compare_rows_are_keyed_by_the_options_each_estimator_reads():
    results, summary = gradvar.compare(**SWEEP, summary=True)
    counts = summary.estimator.value_counts().to_dict()
    assert counts == {"sf": 1, "arm": 1, "gumbel-softmax": 2, "rebar": 4}
    assert summary[summary.estimator.isin(["sf", "arm"])][["tau", "eta"]].isna().all().all()
    soft = summary[summary.estimator == "gumbel-softmax"]
    assert soft.eta.isna().all() and sorted(soft.tau) == [0.5, 1.0]
    assert not summary.duplicated(["estimator", "baseline", "tau", "eta"]).any()
    assert len(results) == len(summary)  # one coordinate
    # the numbers are those of the estimator run alone: on the same noise, whatever ran beside it
    alone = gradvar.compare(family="bernoulli", logit=0.5, estimator="sf", samples=4000, seed=3)
    assert results[results.estimator == "sf"].grad_mean.iloc[0] == alone.grad_mean.iloc[0]


def test_a_cell_where_no_estimator_runs_is_skipped():
    """rebar reads eta, gumbel-rao rao_samples: the cell (eta=1, rao_samples=2) has nothing
    new to run, and the other three hold each estimator once per value."""
    plan = api.plan_of(
        dict(family="bernoulli", estimator="rebar,gumbel-rao", eta="0.5,1", rao_samples="1,2")
    )
    assert [len(plan.estimators_in(i)) for i in range(4)] == [2, 1, 1, 0]
    _, summary = gradvar.compare(
        family="bernoulli",
        estimator="rebar,gumbel-rao",
        eta="0.5,1",
        rao_samples="1,2",
        samples=2000,
        summary=True,
    )
    assert sorted(summary[summary.estimator == "rebar"].eta) == [0.5, 1.0]
    assert sorted(summary[summary.estimator == "gumbel-rao"].rao_samples) == [1.0, 2.0]
    assert summary[summary.estimator == "rebar"].rao_samples.isna().all()


def test_run_on_a_toml_file_prints_plots_and_resumes(cli, tmp_path, monkeypatch):
    exp = tmp_path / "opts.toml"
    exp.write_text(TOML)
    result = cli("run", exp, "--out", "whole")
    assert result.exit_code == 0, result.output
    out = tmp_path / "whole"
    summary = io.read_csv(out / "summary.csv")
    assert len(summary) == 8 and list(summary.columns)[-1] == api.JACKKNIFE
    # the console grid has a row per (tau, eta) point; sf's one value stands in each
    sf = summary[summary.estimator == "sf"].total_var.iloc[0]
    grid = result.output.split("Variance of one estimate")[1].split("\n\n")[0]
    assert grid.count(f"{sf:.4g}") == 4 and len(grid.strip().splitlines()) == 1 + 1 + 4
    assert "sf (tau, eta), arm (tau, eta), gumbel-softmax (eta)" in result.output
    # a figure per value of the other swept option, each with every estimator
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 2 and all(n.startswith("variance-vs-") for n in pngs), pngs

    real, calls = api.run_cell, []

    def interrupted(plan, cell, progress=None, *args, **kwargs):
        calls.append(cell)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(plan, cell, progress, *args, **kwargs)

    monkeypatch.setattr(api, "run_cell", interrupted)
    assert cli("run", exp, "--out", "again", "-q").exit_code == 130
    calls.clear()
    result = cli("run", exp, "--out", "again", "-q", "--resume")
    assert result.exit_code == 0, result.output
    assert len(calls) == 2  # the two cells left
    for name in ("results.csv", "summary.csv"):
        assert rows_without_timing(tmp_path / "again" / name) == rows_without_timing(out / name), (
            name
        )


def test_sweep_tau_runs_the_references_once_and_resumes_to_the_same_best_tau(
    cli, tmp_path, monkeypatch
):
    args = (
        "sweep-tau",
        "--family",
        "bernoulli",
        "--logit",
        "1",
        "--tau",
        "0.5,1,2",
        "--samples",
        "3000",
    )
    args += ("--estimator", "gumbel-softmax,gumbel-rao", "--rao-samples", "3", "--no-plot", "-q")
    assert cli(*args, "--out", "whole").exit_code == 0
    summary = io.read_csv(tmp_path / "whole" / "summary.csv")
    refs = summary[summary.role == "reference"]
    assert sorted(refs.estimator) == ["sf", "sf-baseline"]
    assert refs.tau.isna().all() and refs.rao_samples.isna().all()
    soft = summary[summary.estimator == "gumbel-softmax"]
    assert soft.rao_samples.isna().all() and len(soft) == 3
    assert (summary[summary.estimator == "gumbel-rao"].rao_samples == 3).all()

    real, calls = api.run_cell, []

    def interrupted(plan, cell, progress=None, *args, **kwargs):
        calls.append(cell)
        if len(calls) == 2 and not resumed:
            raise KeyboardInterrupt
        return real(plan, cell, progress, *args, **kwargs)

    resumed = False
    monkeypatch.setattr(api, "run_cell", interrupted)
    assert cli(*args, "--out", "again").exit_code == 130
    resumed = True
    calls.clear()
    result = cli(*args, "--out", "again", "--resume")
    assert result.exit_code == 0, result.output
    assert len(calls) == 3  # the swept cells left, then the references
    for name in ("results.csv", "summary.csv", "best_tau.csv"):
        assert rows_without_timing(tmp_path / "again" / name) == rows_without_timing(
            tmp_path / "whole" / name
        ), name
