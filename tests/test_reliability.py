"""Never a wrong result with exit 0 (issue 9, items 3, 4, 7, 8, 11): each test is a
reproduction from the reliability and newcomer trials, which must now be refused with one
line and exit 2 before anything is written (or run as documented)."""

import re
import shlex
from pathlib import Path

import pytest
from helpers import rows_without_timing

README = Path(__file__).resolve().parents[1] / "README.md"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def refused(result, *words):
    """Exit 2, one Error line naming ``words``, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], result.output


# --- item 3: `gradvar run` checks every value, types included ---------------------------------
TYPE_ERRORS = [
    ('command = "compare"\nsamples = 1000\nmu = true\n', "mu"),
    ('command = "compare"\nsamples = 1000\nset = 5\n', "set"),
    ('command = "compare"\nsamples = 1000\nset = "k=1"\n', "set"),
    ('command = "compare"\nsamples = 1000\nno-plot = "false"\n', "no-plot"),
    ('command = "compare"\nsamples = 1000\nthreads = 0\n', "threads"),
    ('command = "compare"\nsamples = 1000\nthreads = "abc"\n', "threads"),
    ('command = "compare"\nsamples = 1000\nbaseline = 5\n', "name"),
    ('command = "compare"\nsamples = 1000\nfamily = ["normal"]\n', "family"),
    ('command = "compare"\nsamples = 1000\nsigma = ["a"]\n', "sigma"),
    ('command = "compare"\nsamples = true\n', "samples"),
    ('command = "pick-one"\nlists = 5\n', "lists"),
    ('command = "gumbel-max"\nlogits = [[1, 2], [3]]\n', "logits"),
    ('command = "train"\nsteps = 1\ntrain-positions = "no"\n', "train-positions"),
    ('command = "train"\nsteps = 1\nproblem = ["bump"]\n', "problem"),
]


@pytest.mark.parametrize("text, key", TYPE_ERRORS, ids=[k for _, k in TYPE_ERRORS])
def test_run_refuses_values_of_the_wrong_type_naming_file_and_key(cli, tmp_path, text, key):
    exp = write(tmp_path / "e.toml", text)
    refused(cli("run", exp), "e.toml", key)
    assert not (tmp_path / "results").exists()


def test_run_checks_every_value_of_every_file_before_anything_runs(cli, tmp_path):
    good = write(tmp_path / "good.toml", 'command = "compare"\nsamples = 1000\nmu = "0:1:3"\n')
    bad = write(tmp_path / "bad.toml", 'command = "compare"\nsamples = 1000\nsigma = -1\n')
    refused(cli("run", good, bad), "bad.toml", "sigma")
    assert not (tmp_path / "results").exists()


def test_run_of_a_meta_json_never_replaces_its_own_folder_without_force(cli, tmp_path):
    exp = write(tmp_path / "small.toml", 'command = "pick-one"\nsamples = 10\nno-plot = true\n')
    assert cli("run", exp, "-q").exit_code == 0
    meta = tmp_path / "results" / "small" / "meta.json"
    before = meta.read_text()
    refused(cli("run", meta), "came from")
    assert meta.read_text() == before
    assert cli("run", meta, "--force", "-q").exit_code == 0


# --- item 4: lists are never silently truncated -------------------------------------------
@pytest.mark.parametrize(
    "args, name",
    [
        (["train", "--tau", "0.1,0.5,1"], "tau"),
        (["train", "--lr", "0.1,0.01"], "lr"),
        (["train", "--batch", "2,4"], "batch"),
        (["compare", "--estimator", ","], "estimator: empty list"),
        (["compare", "--baseline", ","], "baseline: empty list"),
    ],
    ids=["train-tau", "train-lr", "train-batch", "estimator-comma", "baseline-comma"],
)
def test_a_list_where_one_value_is_taken_is_an_error(cli, tmp_path, args, name):
    refused(cli(*args, "--out", "o", "-q"), name)
    assert list(tmp_path.iterdir()) == []


# --- item 7: sizes and ranges bounded up front ----------------------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["compare", "--samples", "1e19"], ["samples", "1e+12"]),
        (["sweep-tau", "--samples", "1e19"], ["samples", "1e+12"]),
        (["gumbel-max", "--samples", "1e19"], ["samples", "1e+12"]),
        (["pick-one", "--samples", "1e19"], ["samples", "1e+12"]),
        (["compare", "--batch", "1e9"], ["batch", "1e+07"]),
        (["train", "--batch", "1e9"], ["batch", "1e+07"]),
        (["train", "--steps", "1e9"], ["steps", "1e+07"]),
        (["compare", "--family", "categorical", "--logits", "0:1:100000"], ["10000 classes"]),
        (["gumbel-max", "--logits", "0:1:100000"], ["10000 classes"]),
        (["gumbel-max", "--singles", "1e9"], ["singles", "10000"]),
        (["compare", "--mu", "0:1:100000000"], ["COUNT", "1000000"]),
        (["compare", "--mu", "0:1:1000", "--sigma", "1:2:1000"], ["cells", "100000"]),
        (["compare", "--seed", str(2**64)], ["seed", "2^64"]),
        (["train", "--seed", str(2**64)], ["seed", "2^64"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) and len(v) < 3 else None,
)
def test_sizes_beyond_what_can_be_run_are_refused_with_the_limit(cli, tmp_path, args, words):
    refused(cli(*args, "--out", "o", "-q"), *words)
    assert list(tmp_path.iterdir()) == []


# --- item 8: no traceback anywhere ----------------------------------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--steps", "0"], ["steps"]),
        (["pick-one", "1e308,-1e308"], ["list 1", "overflow"]),
        (["pick-one", "1e308,1e308"], ["list 1", "overflow"]),
        (["compare", "--estimator", ""], ["estimator: empty list"]),  # ran the defaults
        (["compare", "--baseline", ""], ["baseline: empty list"]),
        (["compare", "--family", ""], ["unknown family ''"]),
        (["sweep-tau", "--estimator", ""], ["estimator: empty list"]),
        (["compare", "--estimator", " ,"], ["estimator: empty list"]),
        (["train", "--baseline", ""], ["unknown baseline"]),
        (["sweep-tau", "--tau", ""], ["tau: empty list"]),
        (["train", "--estimator", ""], ["estimator: empty list"]),
    ],
    ids=[
        "steps-0",
        "pick-one-huge",
        "pick-one-huge-equal",
        "empty-estimator",
        "empty-baseline",
        "empty-family",
        "sweep-tau-empty-estimator",
        "blank-estimator",
        "train-empty-baseline",
        "sweep-tau-empty-tau",
        "train-empty-estimator",
    ],
)
def test_inputs_that_used_to_crash_later_are_refused_up_front(cli, tmp_path, args, words):
    refused(cli(*args, "--out", "o", "-q"), *words)


@pytest.fixture(scope="module")
def pick_folder(tmp_path_factory):
    from click.testing import CliRunner

    from gradvar.cli import main

    folder = tmp_path_factory.mktemp("plot") / "p"
    result = CliRunner().invoke(main, ["pick-one", "--samples", "100", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize(
    "damage, words",
    [
        ("meta-list", ["meta.json"]),
        ("results-dir", ["results.csv"]),
        ("meta-dir", ["meta.json"]),
        ("column-removed", ["results.csv", "column"]),
        ("text-in-number", ["results.csv"]),
        ("header-only", ["results.csv"]),
    ],
)
def test_plot_of_a_damaged_folder_is_one_line_naming_the_file(
    cli, tmp_path, pick_folder, damage, words
):
    import shutil

    import pandas as pd

    folder = tmp_path / "c"
    shutil.copytree(pick_folder, folder)
    results, meta = folder / "results.csv", folder / "meta.json"
    lines = results.read_text().splitlines()
    if damage == "meta-list":
        meta.write_text("[1, 2]")
    elif damage == "results-dir":
        results.unlink()
        results.mkdir()
    elif damage == "meta-dir":
        meta.unlink()
        meta.mkdir()
    elif damage == "column-removed":
        table = pd.read_csv(pick_folder / "results.csv")
        table.drop(columns="mc_var").to_csv(results, index=False)
    elif damage == "text-in-number":
        table = pd.read_csv(pick_folder / "results.csv")
        table["mc_var"] = "hello"
        table.to_csv(results, index=False)
    else:
        results.write_text(lines[0] + "\n")
    result = cli("plot", folder)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), result.output


# --- item 11: the README's first command ----------------------------------------------------
def readme_commands():
    """The gradvar command lines of the README's first two code blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)[:2]
    return [line for block in blocks for line in block.splitlines() if "gradvar " in line]


def test_readme_first_command_is_the_mean_shift_and_runs_as_written(cli, tmp_path):
    first = readme_commands()[0]
    args = shlex.split(first.split("bin/gradvar", 1)[1])
    assert args[:2] == ["compare", "--objective"] and args[2] == "linear"
    result = cli(*args, "--samples", "1e4", "--no-plot", "--out", "o", "-q")
    assert result.exit_code == 0, result.output
    table = (tmp_path / "o" / "results.csv").read_text()
    assert ",linear," in table and ",quadratic," not in table


# --- item 6: the kernel cache's commands are tested in tests/test_cache.py ---------------


# --- item 10: numbers that cannot be trusted say so -----------------------------------------
def test_table_flags_non_finite_estimates_with_count_and_share(cli):
    result = cli(
        "compare", "--family", "categorical", "--set", "w=1e300,0,0", "--estimator", "sf",
        "--samples", "1e4", "--no-plot", "--out", "o",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    flag = [line for line in result.output.splitlines() if line.startswith("! sf:")]
    assert len(flag) == 1 and "non-finite" in flag[0] and "of 10,000" in flag[0], result.output
    assert re.search(r"\(\d+\.\d%\)", flag[0])


def test_table_flags_lost_precision_and_warnings_become_one_note(cli):
    result = cli(
        "compare", "--sigma", "1e-300", "--estimator", "sf,sf-baseline", "--samples", "1e4",
        "--no-plot", "--out", "o",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "! sf-baseline (mean):" in result.output and "lose precision" in result.output
    assert "! sf: the variance overflowed" in result.output
    assert result.output.count("RuntimeWarning") == 1  # in the one note, never line by line
    assert "numerical warning(s)" in result.output


@pytest.mark.parametrize("closed", [(2,), (0, 1, 2)], ids=["stderr", "all three"])
def test_a_stream_closed_at_launch_neither_fails_the_run_nor_takes_a_file(tmp_path, closed):
    """``gradvar ... 2>&-``: Python starts with sys.stderr None; every message failed and the
    run exited 1 with its results lost.  Now the closed streams are /dev/null."""
    import os
    import subprocess
    import sys

    def close():
        for fd in closed:
            os.close(fd)

    def gradvar(*args):
        return subprocess.run(
            [sys.executable, "-m", "gradvar", *args], cwd=tmp_path, preexec_fn=close, timeout=600
        ).returncode

    run = ["compare", "--objective", "linear", "--estimator", "sf", "--samples", "1e3"]
    assert gradvar(*run, "--out", "o") == 0
    assert {"results.csv", "summary.csv", "meta.json"} <= set(os.listdir(tmp_path / "o"))
    head = (tmp_path / "o" / "results.csv").read_text().splitlines()[0]
    assert head.startswith("family,objective,estimator,baseline,")  # no message written in it
    assert len(rows_without_timing(tmp_path / "o" / "results.csv")) == 2
    assert gradvar(*run, "--estimator", "nope", "--out", "bad") == 2
    assert not (tmp_path / "bad").exists()
