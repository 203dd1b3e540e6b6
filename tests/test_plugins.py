"""Plugins (gradvar.plugins) end to end, through the real command line in fresh processes
(so this process's registries stay as gradvar ships them): examples/exponential.py shows in
``gradvar list``, compare sweeps its family with ground truth checked against closed forms
derived here, meta.json records its hash, a TOML ``plugins`` key needs --trust-plugins, and
a changed plugin is refused on a re-run."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, Z_TOL

EXAMPLE = f"{ROOT}/examples/exponential.py"


def gradvar(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "gradvar", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_list_shows_the_plugin_family_and_objective(tmp_path):
    proc = gradvar("list", "--plugin", EXAMPLE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "exponential" in proc.stdout and "exponential decay" in proc.stdout
    assert "exponential z" in proc.stdout  # how to write an expression on it


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin")
    plugin = tmp / "exponential.py"
    shutil.copy(EXAMPLE, plugin)
    args = ["compare", "--plugin", plugin, "--family", "exponential", "--param", "lam=0.5,2"]
    args += ["--set", "c=1.5", "--estimator", "sf,reparam,exact", "--samples", "2e5"]
    proc = gradvar(*args, "--no-plot", "--out", tmp / "out", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp, plugin


def test_compare_sweeps_a_plugin_family_with_exact_values(sweep):
    """f = exp(-c z), z ~ Exp(lam): dE/dlam = c / (lam + c)^2; reparam's g = c z exp(-c z)/lam,
    E g^2 = 2 c^2 / (lam (lam + 2c)^3)."""
    tmp, _ = sweep
    res = pd.read_csv(tmp / "out" / "results.csv")
    assert sorted(set(res["lam"])) == [0.5, 2.0]
    c = 1.5
    for _, row in res.iterrows():
        lam = row["lam"]
        grad = c / (lam + c) ** 2
        assert row["exact_grad"] == pytest.approx(grad, rel=1e-12)
        assert abs(row["grad_mean"] - grad) < Z_TOL * row["grad_sem"] + 1e-15
        if row["estimator"] == "reparam":
            var = 2 * c * c / (lam * (lam + 2 * c) ** 3) - grad**2
            assert row["exact_var"] == pytest.approx(var, rel=1e-9)
            se = (row["var_ci_high"] - row["grad_var"]) / 1.959963984540054  # the 95% interval
            assert abs(row["grad_var"] - var) < Z_TOL * se
        assert np.isfinite(row["exact_var"])


def test_meta_records_the_plugin_and_a_changed_one_is_refused(sweep):
    tmp, plugin = sweep
    meta = json.loads((tmp / "out" / "meta.json").read_text())
    (record,) = meta["experiment"]["plugins"]
    import hashlib

    assert record["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()
    refused = gradvar("run", tmp / "out" / "meta.json", "--out", tmp / "again", cwd=tmp)
    assert refused.returncode == 2 and "--trust-plugins" in refused.stderr
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    changed = gradvar(
        "run", tmp / "out" / "meta.json", "--trust-plugins", "--out", tmp / "again", cwd=tmp
    )
    assert changed.returncode == 2 and "changed" in changed.stderr
    assert not (tmp / "again").exists()


def test_a_toml_plugins_key_runs_only_with_trust_plugins(tmp_path):
    toml = tmp_path / "expo.toml"
    toml.write_text(
        f'command = "compare"\nplugins = ["{EXAMPLE}"]\nfamily = "exponential"\n'
        'objective = "abs(z - 1)"\nestimator = "reparam"\nsamples = 1000\nno-plot = true\n'
    )
    refused = gradvar("run", toml, cwd=tmp_path)
    assert refused.returncode == 2 and "--trust-plugins" in refused.stderr
    assert not (tmp_path / "results").exists()
    ok = gradvar("run", toml, "--trust-plugins", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    res = pd.read_csv(tmp_path / "results" / "expo" / "results.csv")
    assert np.isfinite(res["exact_grad"]).all() and np.isfinite(res["exact_var"]).all()


def test_a_broken_plugin_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('no')\n")
    for path in (bad, tmp_path / "missing.py"):
        proc = gradvar("compare", "--plugin", path, "--samples", 10, cwd=tmp_path)
        assert proc.returncode == 2 and "plugin" in proc.stderr, proc.stderr


def test_plot_of_a_plugin_folder_takes_the_plugin_and_says_when_it_is_missing(sweep, tmp_path):
    """``gradvar plot`` draws the figure the run would have drawn given ``--plugin`` again;
    without it, it draws and says which plugin the folder was made with."""
    tmp, plugin = sweep
    folder = tmp_path / "out"
    shutil.copytree(tmp / "out", folder)
    (record,) = json.loads((folder / "meta.json").read_text())["experiment"]["plugins"]
    here = tmp_path / "exponential.py"
    shutil.copy(EXAMPLE, here)  # the run's plugin (another test edits the one it named)
    assert hashlib.sha256(here.read_bytes()).hexdigest() == record["sha256"]
    proc = gradvar("plot", "--plugin", here, folder, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert "plugin" not in proc.stderr
    full = (folder / "variance-vs-lam.png").read_bytes()
    proc = gradvar("plot", folder, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert f"the plugin {record['path']} was not given (--plugin FILE.py)" in proc.stderr
    assert (folder / "variance-vs-lam.png").read_bytes() != full  # the plugin's summary is absent
    assert gradvar("plot", "-q", folder, cwd=tmp).stderr == ""
    other = tmp_path / "other.py"
    other.write_text(here.read_text() + "\n# another plugin\n")
    proc = gradvar("plot", "--plugin", other, folder, cwd=tmp)  # another file: not the run's
    assert "was not given" in proc.stderr
    meta = json.loads((folder / "meta.json").read_text())
    meta["experiment"]["plugins"][0]["path"] = str(here)  # as if the run had used this file
    (folder / "meta.json").write_text(json.dumps(meta))
    here.write_text(here.read_text() + "\n# edited\n")
    proc = gradvar("plot", "--plugin", here, folder, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert f"the plugin {here} has changed since the run" in proc.stderr
