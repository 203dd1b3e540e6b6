"""Results folders: round-trip CSV, atomic writes, the results schema; the pick-one library."""

import math

import numpy as np
import pandas as pd
import pytest

from gradvar import io
from gradvar.studies import pick_one as pickone

TRICKY = [0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3, 2.0**53 + 2, -7.25]


def test_csv_floats_round_trip_bit_for_bit(tmp_path):
    frame = pd.DataFrame(
        {
            "x": TRICKY,
            "name": ["a", "b,c", "", "d", "e", "f", "g", "h"],
            "count": np.arange(8, dtype=np.int64),
        }
    )
    io.write_csv(frame, tmp_path / "t.csv")
    back = io.read_csv(tmp_path / "t.csv")
    assert [v.hex() for v in back["x"]] == [v.hex() for v in TRICKY]
    assert list(back["name"]) == list(frame["name"])
    assert list(back["count"]) == list(range(8))


def test_csv_nan_is_empty_and_bytes_are_stable(tmp_path):
    frame = pd.DataFrame({"a": [1.5, math.nan], "b": ["2.0,0.5,0.1", ""]})
    io.write_csv(frame, tmp_path / "one.csv")
    io.write_csv(frame, tmp_path / "two.csv")
    text = (tmp_path / "one.csv").read_text()
    assert text == 'a,b\n1.5,"2.0,0.5,0.1"\n,\n'
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    back = io.read_csv(tmp_path / "one.csv")
    assert math.isnan(back["a"][1]) and back["b"][1] == ""


def test_atomic_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "results" / "run"
    with io.atomic_folder(target) as tmp:
        assert tmp == io.partial_path(target) and tmp.is_dir()
        (tmp / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a"
    assert not io.partial_path(target).exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_folder_failure_leaves_nothing(tmp_path, error):
    target = tmp_path / "new" / "deeper" / "run"
    with pytest.raises(error), io.atomic_folder(target) as tmp:
        (tmp / "half.csv").write_text("x")
        raise error("boom")
    assert list(tmp_path.iterdir()) == []  # not even the parent folders it created


def test_atomic_folder_never_replaces_without_force(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(io.FolderExistsError, match="--force"), io.atomic_folder(target):
        pass  # pragma: no cover
    with pytest.raises(io.FolderExistsError, match="not a gradvar results folder"):
        with io.atomic_folder(target, force=True):
            pass  # pragma: no cover
    (target / "meta.json").write_text("{}")
    (target / "old.txt").unlink()
    assert (target / "meta.json").exists()
    with pytest.raises(RuntimeError):  # a failed forced run keeps the old folder
        with io.atomic_folder(target, force=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["meta.json"]
    with io.atomic_folder(target, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_folder_clears_a_stale_partial(tmp_path):
    target = tmp_path / "run"
    stale = io.partial_path(target)
    stale.mkdir()
    (stale / "junk").write_text("x")
    with io.atomic_folder(target) as tmp:
        (tmp / "a").write_text("a")
    assert sorted(p.name for p in target.iterdir()) == ["a"]


def test_default_folder_is_unique(tmp_path):
    first = io.default_folder("compare", base=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("compare-")
    first.mkdir()
    assert io.default_folder("compare", base=tmp_path) != first


def test_replace_file_is_atomic(tmp_path):
    path = tmp_path / "p.png"
    path.write_text("old")
    with pytest.raises(ValueError):
        io.replace_file(path, lambda tmp: (tmp.write_text("half"), int("x")))
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["p.png"]
    io.replace_file(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new"


def test_results_schema_helpers():
    # two cells of a tau sweep: sf does not use tau (NaN), gumbel-softmax does
    frame = pd.DataFrame(
        {
            "family": ["categorical"] * 4,
            "objective": ["squared"] * 4,
            "estimator": ["sf", "gumbel-softmax"] * 2,
            "baseline": [""] * 4,
            "logits": ["2.0,0.5"] * 4,
            "tau": [math.nan, 0.5, math.nan, 1.0],
            "param": ["logits[0]"] * 4,
            "n": [10] * 4,
            "batch": [1] * 4,
        }
    )
    assert io.parameter_columns(frame) == ["logits", "tau"]
    assert io.swept_columns(frame) == ["tau"]
    assert io.cell_index(frame) == [0, 0, 1, 1]
    assert io.estimator_label("sf-baseline", "loo") == "sf-baseline (loo)"
    assert io.estimator_label("sf", "") == "sf"


def test_pick_one_exact_values():
    assert pickone.exact([4, 5, 6]) == (5.0, 2 / 3)
    assert pickone.exact([0, 5, 10]) == (5.0, 50 / 3)
    assert pickone.exact_fraction([0, 5, 10]) == "50/3"
    assert pickone.exact_fraction([0.5, 1]) is None
    support, prob = pickone.distribution([1, 1, 2])
    assert list(support) == [1, 2] and np.allclose(prob, [2 / 3, 1 / 3])


def test_pick_one_monte_carlo_is_seeded_per_list():
    a = pickone.monte_carlo([0, 5, 10], 5000, seed=3, index=1)
    assert a == pickone.monte_carlo([0, 5, 10], 5000, seed=3, index=1)
    assert a != pickone.monte_carlo([0, 5, 10], 5000, seed=4, index=1)
    rows = pickone.rows([[4, 5, 6], [0, 5, 10]], 5000, seed=3)
    assert (rows[1]["mc_mean"], rows[1]["mc_var"]) == a  # list 2 ignores list 1
    assert math.isnan(pickone.monte_carlo([1, 2], 1)[1])


def test_pick_one_monte_carlo_agrees_with_exact():
    n = 200_000
    mean, var = pickone.monte_carlo([0, 5, 10], n, seed=0)
    # one pick: mu4 = 1250/3, sigma^2 = 50/3; se(sample var) ~ sqrt((mu4 - sigma^4) / n)
    se_var = math.sqrt((1250 / 3 - (50 / 3) ** 2) / n)
    assert abs(mean - 5) < 5 * math.sqrt(50 / 3 / n)  # 5 standard errors: false alarm < 1e-6
    assert abs(var - 50 / 3) < 5 * se_var


def test_atomic_folder_can_keep_the_partial_on_ctrl_c_and_resume_from_it(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_folder(target, keep_on_interrupt=True) as tmp:
            (tmp / "cell0").write_text("done")
            raise KeyboardInterrupt
    assert not target.exists() and (io.partial_path(target) / "cell0").exists()
    with pytest.raises(RuntimeError):  # any other failure still leaves nothing
        with io.atomic_folder(target, resume=True, keep_on_interrupt=True) as tmp:
            assert (tmp / "cell0").read_text() == "done"
            raise RuntimeError
    assert not io.partial_path(target).exists() and not target.exists()
