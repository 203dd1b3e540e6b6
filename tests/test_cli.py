"""The command line, through click's CliRunner: every command, option family and error.

Runs are tiny (SAMPLES estimates) and reuse a few (family, objective, estimator) kernels, so
after the first compilation the file runs in seconds.
"""

import csv
import json
import math
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from gradvar.cli import common, compare, main
from gradvar.studies import compare as api

SAMPLES = "2000"
README = Path(__file__).resolve().parents[1] / "README.md"
CONTRACT_COLUMNS = [
    "family",
    "objective",
    "estimator",
    "baseline",
    "param",
    "n",
    "batch",
    "seed",
    "grad_mean",
    "grad_var",
    "grad_sem",
    "var_ci_low",
    "var_ci_high",
    "exact_grad",
    "exact_var",
    "bias",
    "bias_z",
    "mse",
    "nonfinite",
    "seconds",
    "estimates_per_s",
]


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without_timing(path):
    """results.csv lines with the timing columns blanked: what must be byte-identical."""
    lines = Path(path).read_text().splitlines()
    header = lines[0].split(",")
    drop = {header.index(c) for c in api.TIMING_COLUMNS if c in header}
    out = []
    for row in csv.reader(lines):
        out.append([v for i, v in enumerate(row) if i not in drop])
    return out


# --- help, documentation, start-up ---------------------------------------------------------
def test_help_and_version(cli):
    result = cli("--help")
    assert result.exit_code == 0 and "compare" in result.output and "pick-one" in result.output
    assert cli("--version").output.strip().startswith("gradvar, version")


def test_version_has_one_source():
    """pyproject.toml holds the version; gradvar reads the installed distribution's, and says
    0+unknown when it is not installed."""
    import gradvar

    assert gradvar.__version__ == version("gradvar")
    pyproject = (README.parent / "pyproject.toml").read_text()
    assert f'\nversion = "{gradvar.__version__}"\n' in pyproject
    code = (
        "import importlib.metadata as m\n"
        "def missing(name):\n"
        "    raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import gradvar\n"
        "print(gradvar.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0+unknown"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help_with_an_example(cli, name):
    result = cli(name, "--help")
    assert result.exit_code == 0
    example = result.output[result.output.find("Example") :]
    assert re.search(r"^Examples?:\n(\s+gradvar .*\n)+", example), result.output
    assert f"gradvar {name}" in example


def test_every_command_is_documented_in_the_readme():
    text = README.read_text()
    for name in main.commands:
        assert f"### `gradvar {name}`" in text, f"README.md has no section for gradvar {name}"


def test_help_imports_neither_numba_nor_matplotlib_nor_pandas():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom gradvar.cli import main\n"
        "for name in [None, *main.commands]:\n"
        "    CliRunner().invoke(main, [name, '--help'] if name else ['--help'])\n"
        "print(sorted(m for m in ('numba', 'matplotlib', 'pandas', 'scipy', 'tqdm')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list(cli):
    result = cli("list")
    assert result.exit_code == 0 and "sf-baseline" in result.output


# --- compare: one point ---------------------------------------------------------------------
def test_compare_defaults_write_the_results_folder(cli, tmp_path):
    result = cli("compare", "--samples", SAMPLES, "--quiet")
    assert result.exit_code == 0, result.output
    [folder] = (tmp_path / "results").iterdir()
    assert folder.name.startswith("compare-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json",
        "results.csv",
        "summary.csv",
        "variance.png",
    ]
    table = rows(folder / "results.csv")
    assert set(CONTRACT_COLUMNS) <= set(table[0]) and {"mu", "sigma", "k"} <= set(table[0])
    assert {r["estimator"] for r in table} == {"sf", "sf-baseline", "reparam"}
    assert [r["param"] for r in table[:2]] == ["mu", "sigma"]
    first = table[0]
    assert (first["n"], first["mu"], first["sigma"], first["k"]) == ("2000", "1.0", "1.0", "0.0")
    assert first["tau"] == "" and float(first["exact_grad"]) == 2.0  # d/dmu (mu - k)^2 = 2
    assert "sf-baseline" in {r["estimator"] for r in rows(folder / "summary.csv")}
    for header in (
        "estimate ± sem",
        "exact",
        "variance [95% CI]",
        "exact var",
        "MSE",
        "estimates/s",
    ):
        assert header in result.output
    assert str(Path("results") / folder.name / "results.csv") in result.output
    assert result.stderr == ""  # --quiet


def test_meta_json_holds_the_resolved_experiment(cli, tmp_path):
    result = cli(
        "compare",
        "--estimator",
        "sf,reparam",
        "--samples",
        "2e3",
        "--seed",
        7,
        "--threads",
        1,
        "--out",
        "out",
        "--no-plot",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["experiment"] == {
        "command": "compare",
        "family": "normal",
        "objective": "quadratic",
        "estimator": ["sf", "reparam"],
        "baseline": "mean",
        "mu": 1.0,
        "sigma": 1.0,
        "set": {"k": 0.0},
        "batch": 1,
        "samples": 2000,
        "seed": 7,
        "threads": 1,
        "no-plot": True,
    }
    for key in ("gradvar", "numpy", "numba", "command_line", "threads", "started", "finished"):
        assert key in meta
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "meta.json",
        "results.csv",
        "summary.csv",
    ]
    # the experiment object re-runs to the same numbers
    compare.execute(meta["experiment"], out=tmp_path / "again", quiet=True)
    assert without_timing(tmp_path / "out/results.csv") == without_timing(
        tmp_path / "again/results.csv"
    )


def test_same_seed_same_results_with_one_or_two_threads(cli, tmp_path):
    for threads in (1, 2):
        result = cli(
            "compare",
            "--mu",
            "0,2",
            "--estimator",
            "sf,sf-baseline,reparam",
            "--samples",
            40_000,
            "--threads",
            threads,
            "--out",
            f"t{threads}",
            "-q",
            "--no-plot",
        )
        assert result.exit_code == 0, result.output
    one = without_timing(tmp_path / "t1/results.csv")
    two = without_timing(tmp_path / "t2/results.csv")
    assert one == two and len(one) == 1 + 2 * 3 * 2


def test_compare_sweep_table_and_plot(cli, tmp_path):
    result = cli(
        "compare",
        "--mu",
        "-1:1:3",
        "--estimator",
        "sf,reparam",
        "--samples",
        SAMPLES,
        "--out",
        "sweep",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "sweep/results.csv")
    assert len(table) == 3 * 2 * 2
    assert [r["mu"] for r in table[::4]] == ["-1.0", "0.0", "1.0"]
    assert "Variance of one estimate of d/dmu" in result.output
    assert "Variance of one estimate of d/dsigma" in result.output
    assert (tmp_path / "sweep/variance-vs-mu.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "sweep/meta.json").read_text())["experiment"]["mu"] == [
        -1.0,
        0.0,
        1.0,
    ]


def test_set_sweeps_and_sets_objective_parameters(cli, tmp_path):
    result = cli(
        "compare",
        "--set",
        "k=-1,1",
        "--sigma",
        "0.5,2",
        "--estimator",
        "reparam",
        "--samples",
        SAMPLES,
        "--out",
        "k",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "k/results.csv")
    assert {(r["sigma"], r["k"]) for r in table} == {
        ("0.5", "-1.0"),
        ("0.5", "1.0"),
        ("2.0", "-1.0"),
        ("2.0", "1.0"),
    }
    assert float(table[0]["exact_grad"]) == 2 * (1 - -1)  # d/dmu (z - k)^2 at mu = 1, k = -1
    # two swept parameters: x is the one with more values (ties: the first), a figure per
    # value of the other
    assert sorted(p.name for p in (tmp_path / "k").glob("*.png")) == [
        "variance-vs-sigma-k=-1.png",
        "variance-vs-sigma-k=1.png",
    ]


def test_objective_and_batch_options(cli, tmp_path):
    result = cli(
        "compare",
        "--objective",
        "linear",
        "--set",
        "a=3",
        "--estimator",
        "sf-baseline",
        "--baseline",
        "loo",
        "--batch",
        2,
        "--samples",
        SAMPLES,
        "--out",
        "lin",
        "-q",
        "--no-plot",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "lin/results.csv")
    assert {(r["objective"], r["a"], r["baseline"], r["batch"]) for r in table} == {
        ("linear", "3.0", "loo", "2")
    }


def test_categorical_and_bernoulli(cli, tmp_path):
    result = cli(
        "compare",
        "--family",
        "categorical",
        "--logits",
        "1,0,-1",
        "--estimator",
        "sf,gumbel-softmax",
        "--tau",
        "0.5",
        "--samples",
        SAMPLES,
        "--out",
        "cat",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "cat/results.csv")
    assert [r["param"] for r in table[:3]] == ["logits[0]", "logits[1]", "logits[2]"]
    assert {r["logits"] for r in table} == {"1.0,0.0,-1.0"}
    assert {(r["estimator"], r["tau"]) for r in table} == {("sf", ""), ("gumbel-softmax", "0.5")}
    meta = json.loads((tmp_path / "cat/meta.json").read_text())["experiment"]
    assert meta["logits"] == [1.0, 0.0, -1.0] and meta["tau"] == 0.5
    assert meta["set"] == {"w": [1.0, 2.0, 3.0], "t": 0.499}
    result = cli(
        "compare",
        "--family",
        "bernoulli",
        "--logit",
        "-1,1",
        "--estimator",
        "sf",
        "--samples",
        SAMPLES,
        "--out",
        "ber",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "ber/results.csv")
    assert [(r["param"], r["logit"]) for r in table] == [("logit", "-1.0"), ("logit", "1.0")]
    assert (tmp_path / "ber/variance-vs-logit.png").exists()


def test_tau_sweep_keeps_tau_free_estimators_as_references(cli, tmp_path):
    result = cli(
        "compare",
        "--family",
        "categorical",
        "--estimator",
        "sf,gumbel-softmax",
        "--tau",
        "log:0.1:1:3",
        "--samples",
        SAMPLES,
        "--out",
        "tau",
        "-q",
    )
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "tau/results.csv")
    assert len(table) == (1 + 3) * 3  # sf once (tau empty, REFERENCE 6b), gumbel-softmax per tau
    assert {r["tau"] for r in table if r["estimator"] == "sf"} == {""}
    taus = [float(r["tau"]) for r in table if r["estimator"] == "gumbel-softmax"][::3]
    assert taus == pytest.approx([0.1, 10**-0.5, 1.0], rel=1e-12)
    assert "Variance of one estimate of d/dlogits[2]" in result.output
    assert (tmp_path / "tau/variance-vs-tau.png").stat().st_size > 10_000


# --- output folder rules ------------------------------------------------------------------
def test_existing_folder_is_kept_unless_force(cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    result = cli("compare", "--samples", SAMPLES, "--out", "out", "-q")
    assert result.exit_code == 2 and "already exists" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]
    force = ["compare", "--estimator", "reparam", "--samples", SAMPLES, "--out", "out", "--force"]
    result = cli(*force, "-q")  # not a results folder (no meta.json): never replaced
    assert result.exit_code == 2 and "not a gradvar results folder" in result.output
    (tmp_path / "out" / "meta.json").write_text("{}")
    result = cli(*force, "-q")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "mine.txt").exists()
    assert (tmp_path / "out" / "results.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


BAD_INPUT = [
    (["--estimator", "sf,reparm"], "did you mean 'reparam'"),
    (["--objective", "quadratc"], "did you mean 'quadratic'"),
    (["--family", "gauss"], "unknown family"),
    (["--family", "categorical", "--estimator", "reparam"], "reparam"),
    (["--sigma", "0"], "sigma must be > 0"),
    (["--sigma", "1,-2"], "sigma must be > 0"),
    (["--mu", "nan"], "mu must be finite"),
    (["--mu", "inf"], "mu must be finite"),
    (["--set", "k=nan"], "k must be finite"),
    (["--samples", "0"], "samples must be >= 1"),
    (["--samples", "many"], "cannot parse"),
    (["--samples", "1.5"], "whole number"),
    (["--estimator", "sf-baseline", "--baseline", "loo"], "needs batch >= 2"),
    (["--baseline", "median"], "unknown baseline"),
    (["--mu", "1,x"], "mu: cannot parse"),
    (["--mu", "0:1"], "mu: cannot parse"),
    (["--tau", "0", "--family", "bernoulli", "--estimator", "gumbel-softmax"], "tau must be > 0"),
    (["--set", "q=1"], "has no parameter 'q'"),
    (["--set", "k"], "KEY=VALUE"),
    (["--set", "k=1", "--set", "k=2"], "set twice"),
    (["--logits", "1,2"], "has no parameter 'logits'"),
    (["--family", "categorical", "--set", "w=1,2"], "w needs 3 values"),
    (["--batch", "0"], "batch must be >= 1"),
    (["--seed", "-1"], "seed must be >= 0"),
    (["--threads", "0"], "--threads"),
    (["--family", "categorical", "--estimator", "gumbel-rao", "--rao-samples", "1e9"], "<= 1e+05"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, args, message):
    result = cli(
        "compare",
        *args,
        "--samples" if "--samples" not in args else "--seed",
        SAMPLES if "--samples" not in args else "0",
    )
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0], result.output
    assert list(tmp_path.iterdir()) == []


def test_failure_while_running_exits_1_and_leaves_nothing(cli, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(api, "run_plan", broken)
    result = cli("compare", "--samples", SAMPLES)
    assert result.exit_code == 1 and "RuntimeError: engine exploded" in result.output
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_no_half_folder(cli, tmp_path, monkeypatch):
    from gradvar.studies import base

    def broken(command, folder):
        (Path(folder) / "variance.png").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(base, "draw", broken)
    result = cli("compare", "--estimator", "reparam", "--samples", SAMPLES)
    assert result.exit_code == 1 and "disk full" in result.output
    # no half-written folder; the finished cell stays in DIR.partial/ for --resume (said so)
    left = [p.name for p in (tmp_path / "results").iterdir()]
    assert len(left) == 1 and left[0].endswith(".partial"), left
    assert "1 finished cell(s) kept in" in result.output and "--resume" in result.output
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "results" / left[0][: -len(".partial")])
    again = cli("compare", "--estimator", "reparam", "--samples", SAMPLES, "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [Path(out).name]


def test_progress_bar_is_silent_when_quiet():
    with common.progress_bar(10, True, "x") as tick:
        assert tick is None
    with common.progress_bar(10, False, "x") as tick:
        tick(10)


# --- plot ---------------------------------------------------------------------------------
def test_plot_redraws_from_the_csv(cli, tmp_path):
    assert (
        cli(
            "compare", "--estimator", "sf,reparam", "--samples", SAMPLES, "--out", "p", "-q"
        ).exit_code
        == 0
    )
    png = tmp_path / "p" / "variance.png"
    png.unlink()
    (tmp_path / "p" / "meta.json").unlink()  # the CSV alone is enough
    result = cli("plot", "p")
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000 and str(Path("p") / "variance.png") in result.output


def test_plot_redraws_sweeps_and_pick_one(cli, tmp_path):
    assert (
        cli(
            "compare",
            "--estimator",
            "reparam",
            "--sigma",
            "1,2",
            "--samples",
            SAMPLES,
            "--out",
            "s",
            "-q",
            "--no-plot",
        ).exit_code
        == 0
    )
    assert cli("pick-one", "--samples", 100, "--out", "o", "-q", "--no-plot").exit_code == 0
    result = cli("plot", "s", "o")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s/variance-vs-sigma.png").exists()
    assert (tmp_path / "o/pick-one.png").exists()


def test_plot_rejects_a_folder_without_results(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("plot", "empty")
    assert result.exit_code == 2 and "no results.csv" in result.output
    assert cli("plot", "missing").exit_code == 2


# --- pick-one -----------------------------------------------------------------------------
def test_pick_one_reference_lists(cli, tmp_path):
    result = cli("pick-one", "4,5,6", "0,5,10", "--samples", 20_000, "--out", "po")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "po/results.csv")
    assert list(table[0])[:6] == ["values", "mean", "exact_var", "n", "mc_mean", "mc_var"]
    assert [r["values"] for r in table] == ["4.0,5.0,6.0", "0.0,5.0,10.0"]
    assert [float(r["mean"]) for r in table] == [5.0, 5.0]
    assert [float(r["exact_var"]) for r in table] == [2 / 3, 50 / 3]
    for r, mu4 in zip(
        table, (2 / 3, 1250 / 3), strict=False
    ):  # 5 standard errors: false alarm < 1e-6
        n, var = int(r["n"]), float(r["exact_var"])
        assert abs(float(r["mc_mean"]) - 5) < 5 * math.sqrt(var / n)
        assert abs(float(r["mc_var"]) - var) < 5 * math.sqrt((mu4 - var**2) / n)
    assert "2/3" in result.output and "50/3" in result.output
    assert (tmp_path / "po/pick-one.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "po/meta.json").read_text())["experiment"]["lists"] == [
        [4.0, 5.0, 6.0],
        [0.0, 5.0, 10.0],
    ]


def test_pick_one_is_seeded_and_takes_any_number_of_lists(cli, tmp_path):
    for out in ("a", "b"):
        assert (
            cli(
                "pick-one",
                "--samples",
                500,
                "--seed",
                3,
                "--out",
                out,
                "--no-plot",
                "-q",
                "1,2",
                "3",
                "--",
                "-1,0,1",
            ).exit_code
            == 0
        )
    assert (tmp_path / "a/results.csv").read_bytes() == (tmp_path / "b/results.csv").read_bytes()
    assert len(rows(tmp_path / "a/results.csv")) == 3
    assert not list((tmp_path / "a").glob("*.png"))
    result = cli("pick-one", "--samples", 500, "-q")  # default lists
    assert result.exit_code == 0 and "50/3" in result.output


def test_pick_one_of_one_element_lists_draws_its_figure(cli, tmp_path):
    """results.csv's ``values`` column then holds plain numbers ("5"), which pandas reads as
    numbers: the figure failed after the run (exit 1, the folder left partial)."""
    result = cli("pick-one", "--samples", 500, "--out", "o", "-q", "5", "2.5")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "pick-one.png").stat().st_size > 10_000
    assert cli("plot", "o", "-q").exit_code == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["1,a"], "list 1: cannot parse"),
        (["1,2", "nan"], "list 2 must be finite"),
        (["1,2", "--samples", "0"], "samples must be >= 1"),
        ([""], "empty list"),
    ],
)
def test_pick_one_bad_input(cli, tmp_path, args, message):
    result = cli("pick-one", *args)
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_pick_one_existing_folder(cli, tmp_path):
    (tmp_path / "x").mkdir()
    assert cli("pick-one", "--out", "x", "-q").exit_code == 2
    assert cli("pick-one", "--out", "x", "--force", "-q", "--samples", 10).exit_code == 2
    (tmp_path / "x" / "meta.json").write_text("{}")  # a results folder: --force replaces it
    assert cli("pick-one", "--out", "x", "--force", "-q", "--samples", 10).exit_code == 0
