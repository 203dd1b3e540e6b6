"""One entry each, defined outside gradvar (tests/ext_plugin.py): a family with its own
quadrature rule, an objective, an estimator with its own option and noise stream, and a
baseline are picked up by the CLI options, TOML keys, CSV columns, ``gradvar list``,
validation and ground truth.  Run in a fresh interpreter so the registries of this test
process stay as gradvar ships them."""

import json
import math
import textwrap

import pandas as pd
import pytest
from helpers import Z_TOL, run_python

SCRIPT = """
import json, sys
import ext_plugin  # registers its entries before the CLI builds its options
from click.testing import CliRunner
from gradvar.cli import main
out = []
for args in json.loads(sys.argv[1] if len(sys.argv) > 1 else {calls!r}):
    r = CliRunner().invoke(main, args)
    out.append(dict(code=r.exit_code, output=r.output))
print(json.dumps(out))
"""


def _cli(calls, env=None):
    code = SCRIPT.format(calls=json.dumps(calls))
    return json.loads(run_python(code, env=env).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ext")
    toml = tmp / "expo.toml"
    toml.write_text(
        textwrap.dedent(
            """\
            command = "compare"
            family = "exponential"
            lam = 1.5
            estimator = "sf-jitter"
            gamma = 0.25
            samples = 20000
            no-plot = true
            [set]
            c = 2
            """
        )
    )
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text('command = "compare"\nfamily = "exponential"\nlamm = 1\n')
    calls = [
        ["list"],
        ["compare", "--help"],
        [
            "compare",
            "--family",
            "exponential",
            "--lam",
            "1.5,3",
            "--estimator",
            "sf,sf-jitter,sf-baseline,reparam",
            "--baseline",
            "mean,half",
            "--gamma",
            "0.5",
            "--samples",
            "4e5",
            "--seed",
            "3",
            "--no-plot",
            "-q",
            "--out",
            str(tmp / "cmp"),
        ],
        ["compare", "--family", "exponential", "--lam", "-1", "--out", str(tmp / "x1")],
        ["compare", "--family", "exponential", "--baseline", "halff", "--out", str(tmp / "x2")],
        ["compare", "--family", "exponential", "--estimator", "sf-jitter", "--gamma", "nan"],
        [
            "compare",
            "--family",
            "exponential",
            "--param",
            "lam=3",
            "--samples",
            "1e3",
            "--no-plot",
            "-q",
            "--out",
            str(tmp / "param"),
        ],
        ["run", str(toml), "--out", str(tmp / "toml"), "-q"],
        ["run", str(bad_toml), "--out", str(tmp / "x3")],
    ]
    return tmp, _cli(calls, env={"GRADVAR_DEBUG": "1"})


def test_list_shows_every_new_entry(runs):
    _, out = runs
    text = out[0]["output"]
    for name in ("exponential", "square", "sf-jitter", "half", "--gamma", "lam=2"):
        assert name in text, name


def test_cli_options_are_generated_from_the_registries(runs):
    _, out = runs
    help_text = " ".join(out[1]["output"].split())  # unwrapped
    assert "--lam VALUES" in help_text and "--gamma VALUES" in help_text, help_text
    assert "Rate lambda (> 0) of the exponential family" in help_text and "half" in help_text


def test_new_entries_run_with_csv_columns_and_ground_truth(runs):
    tmp, out = runs
    assert out[2]["code"] == 0, out[2]["output"]
    results = pd.read_csv(tmp / "cmp" / "results.csv")
    columns = list(results.columns)
    # family and objective parameters lead, the new option is appended after the statistics
    assert columns[4:7] == ["lam", "c", "tau"] and columns[-1] == "gamma"
    assert sorted(set(results.lam)) == [1.5, 3.0]
    variants = results[results.estimator == "sf-baseline"].baseline
    assert sorted(set(variants)) == ["half", "mean"]
    jitter = results[results.estimator == "sf-jitter"]
    assert (jitter.gamma == 0.5).all() and results[results.estimator == "sf"].gamma.isna().all()
    for _, row in results.iterrows():
        lam = row.lam
        assert row.exact_grad == pytest.approx(-4.0 / lam**3, rel=1e-12)
        assert math.isfinite(row.exact_var), row.estimator
        assert abs(row.bias_z) < Z_TOL, (row.estimator, row.baseline, row.bias_z)
        se = (row.var_ci_high - row.grad_var) / 1.959963984540054
        if row.exact_var > 0:
            assert abs(row.grad_var - row.exact_var) < Z_TOL * se, (row.estimator, row.baseline)
    # the exact hook adds gamma^2 / 3 to sf's exact variance, and the Monte Carlo agrees
    sf = results[results.estimator == "sf"].set_index("lam").exact_var
    assert (jitter.set_index("lam").exact_var - sf).to_numpy() == pytest.approx(0.25 / 3)
    # the reparameterization of the exponential: exact variance by Gauss-Laguerre, closed form
    # Var[-2 z^2 / lam] per sample with z = E / lam: 4 / lam^6 (E[E^4] - E[E^2]^2) = 80 / lam^6
    rp = results[results.estimator == "reparam"].set_index("lam").exact_var
    assert rp.to_numpy() == pytest.approx([80 / 1.5**6, 80 / 3.0**6], rel=1e-9)


def test_new_entries_are_validated(runs):
    _, out = runs
    assert out[3]["code"] == 2 and "lam must be > 0" in out[3]["output"]
    assert out[4]["code"] == 2 and "'half'" in out[4]["output"]
    assert out[5]["code"] == 2 and "gamma must be finite" in out[5]["output"]


def test_generic_param_option_and_toml_keys(runs):
    tmp, out = runs
    assert out[6]["code"] == 0, out[6]["output"]
    assert set(pd.read_csv(tmp / "param" / "results.csv").lam) == {3.0}
    assert out[7]["code"] == 0, out[7]["output"]
    toml = pd.read_csv(tmp / "toml" / "results.csv")
    assert set(toml.gamma) == {0.25} and set(toml.c) == {2.0} and set(toml.lam) == {1.5}
    assert out[8]["code"] == 2 and "unknown key 'lamm'" in out[8]["output"]
    assert "did you mean 'lam'" in out[8]["output"]
