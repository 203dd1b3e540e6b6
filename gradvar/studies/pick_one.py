"""The "pick one" illustration of why variance matters (``gradvar pick-one``).

To estimate the average of a list by picking one element uniformly at random gives an
unbiased estimate whose variance is the population variance of the list:
avg([4, 5, 6]) = avg([0, 5, 10]) = 5, but the single-pick variances are 2/3 and 50/3.
Same target, very different reliability; high-variance gradient estimators are the
second list.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from gradvar import defaults, interrupt, spec
from gradvar.studies.base import Snapshot, Study, from_keywords, saved_states

CHUNK = 1 << 20  # picks drawn per step: bounded memory for any number of samples


def exact(values):
    """Mean and exact variance of one uniformly random pick from ``values``.

    Parameters
    ----------
    values : array_like of float
        The list.

    Returns
    -------
    mean, var : float
        The list's mean and its population variance (ddof = 0), which is the variance of
        a single pick.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    return mean, float(np.mean((values - mean) ** 2))


def exact_fraction(values):
    """The exact single-pick variance as a fraction string ('50/3') for integer lists, else None."""
    if not all(float(v).is_integer() for v in values):
        return None
    ints = [int(v) for v in values]
    mean = Fraction(sum(ints), len(ints))
    var = sum((Fraction(v) - mean) ** 2 for v in ints) / len(ints)
    return str(var)


def stream(seed, index):
    """The random generator of list number ``index``: independent of the other lists."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def monte_carlo(values, samples, seed=0, index=0, snapshot=None):
    """Mean and unbiased variance of ``samples`` independent single-pick estimates.

    Parameters
    ----------
    values : array_like of float
        The list.
    samples : int
        Number of single-pick estimates (>= 1).
    seed, index : int
        The generator is seeded by (seed, index), so a list's numbers do not depend on
        the other lists of the run.
    snapshot : gradvar.studies.base.Snapshot, optional
        Where the picks so far (counts, picks left, generator state) are saved as they go
        and resumed from, so an interrupted list continues bit for bit.

    Returns
    -------
    mc_mean, mc_var : float
        Sample mean and unbiased sample variance (NaN for one sample).  Picks are counted
        per element, so the result is exact arithmetic on the counts and memory is bounded.
    """
    values = np.asarray(values, dtype=float)
    rng, counts, left = _resumed(snapshot, len(values), int(samples), seed, index)

    def state():
        return {"left": left, "counts": counts.tolist(), "rng": rng.bit_generator.state}

    ran = left > 0
    while left > 0:
        interrupt.check()
        size = min(left, CHUNK)
        counts += np.bincount(rng.integers(0, len(values), size=size), minlength=len(values))
        left -= size
        if snapshot is not None:
            snapshot.save(state)
    if snapshot is not None and ran:
        snapshot.save(state, force=True)
    mc_mean = float(counts @ values / samples)
    if samples < 2:
        return mc_mean, math.nan
    return mc_mean, float(counts @ (values - mc_mean) ** 2 / (samples - 1))


def _resumed(snapshot, k, samples, seed, index):
    """(generator, counts, picks left) of a list: afresh, or as ``snapshot`` saved them."""
    rng = stream(seed, index)
    saved = snapshot.load() if snapshot is not None else None
    if saved is not None:
        try:
            counts = np.array(saved["counts"], dtype=np.int64)
            left = int(saved["left"])
            if counts.shape != (k,) or counts.min() < 0 or left < 0:
                raise ValueError
            if int(counts.sum()) + left != samples:
                raise ValueError
            rng.bit_generator.state = saved["rng"]
            return rng, counts, left
        except (KeyError, TypeError, ValueError):
            snapshot.damaged()
            rng = stream(seed, index)
    return rng, np.zeros(k, dtype=np.int64), samples


def rows(lists, samples=defaults.PICK_ONE_SAMPLES, seed=defaults.SEED, checkpoint=None):
    """The pick-one table: one row per list.

    Parameters
    ----------
    lists : sequence of array_like
        The lists to compare.
    samples : int
        Monte Carlo single-pick estimates per list.
    seed : int
        Seed of the Monte Carlo check.
    checkpoint : path, optional
        A folder where each list's picks are saved as they go (``listNNNNN.state.json``)
        and resumed from: the unit of work is a list, saved also part-way.

    Returns
    -------
    list of dict
        Per list: ``values`` (comma text), ``mean``, ``exact_var``, ``n``, ``mc_mean``,
        ``mc_var``, ``mc_sem`` (standard error of ``mc_mean``) and ``seed``.
    """
    out = []
    for index, values in enumerate(lists):
        values = np.asarray(values, dtype=float)
        mean, var = exact(values)
        snapshot = None if checkpoint is None else Snapshot(checkpoint, f"list{index:05d}")
        mc_mean, mc_var = monte_carlo(values, samples, seed, index, snapshot)
        out.append(
            dict(
                values=",".join(repr(float(v)) for v in values),
                mean=mean,
                exact_var=var,
                n=int(samples),
                mc_mean=mc_mean,
                mc_var=mc_var,
                mc_sem=math.sqrt(mc_var / samples) if samples > 1 else math.nan,
                seed=int(seed),
            )
        )
    return out


def distribution(values):
    """The exact distribution of a single pick: distinct values and their probabilities."""
    values = np.asarray(values, dtype=float)
    support, counts = np.unique(values, return_counts=True)
    return support, counts / len(values)


# --- the study behind `gradvar pick-one` ------------------------------------------------------
@dataclass
class PickOneSpec:
    lists: list
    samples: int
    seed: int
    no_plot: bool = False


class PickOne(Study):
    name = "pick-one"
    resumable = True  # each list's picks are saved as they go

    def allowed_keys(self):
        return {"lists", "samples", "seed", "no-plot"}

    def spec(self, experiment):
        lists = []
        raw_lists = experiment.get("lists") or defaults.PICK_ONE_LISTS
        if not isinstance(raw_lists, (list, tuple)):
            raise spec.SpecError('lists: a list of lists, e.g. lists = ["4,5,6", "0,5,10"]')
        for i, raw in enumerate(raw_lists):
            values = spec.parse_values(raw, f"list {i + 1}")
            spec.check_finite(f"list {i + 1}", values)
            if len(values) > spec.MAX_LIST:
                raise spec.SpecError(f"list {i + 1}: at most {spec.MAX_LIST} values")
            big = max(abs(v) for v in values)
            if big > spec.MAX_VALUE:  # the variance would overflow to inf
                raise spec.SpecError(
                    f"list {i + 1}: values must be within +-{spec.MAX_VALUE:g} (their squares "
                    f"must not overflow), got {big:g}"
                )
            lists.append(values)
        samples = spec.parse_count(experiment.get("samples", defaults.PICK_ONE_SAMPLES), "samples")
        spec.check_size(samples, "samples", spec.MAX_SAMPLES)
        seed = spec.check_seed(experiment.get("seed", defaults.SEED))
        no_plot = spec.flag_of(experiment.get("no-plot", False), "no-plot")
        return PickOneSpec(lists, samples, seed, no_plot)

    def resolved(self, spec):
        return {
            "command": self.name,
            "lists": spec.lists,
            "samples": spec.samples,
            "seed": spec.seed,
            "no-plot": spec.no_plot,
        }

    def run(self, spec, progress=None, checkpoint=None):
        import pandas as pd

        return {"results": pd.DataFrame(rows(spec.lists, spec.samples, spec.seed, checkpoint))}

    def kept(self, spec, cells):
        states = saved_states(cells).values()
        picks = sum(spec.samples - int(s.get("left", spec.samples)) for s in states)
        finished = sum(1 for s in states if s.get("left") == 0)
        return (
            f"{picks:,} of {spec.samples * len(spec.lists):,} picks ({finished} of "
            f"{len(spec.lists)} list(s) finished)"
        )


STUDY = PickOne()


def pick_one(lists=None, samples=defaults.PICK_ONE_SAMPLES, seed=defaults.SEED):
    """``gradvar.pick_one``: the pick-one ``results.csv`` table as a DataFrame (the lists
    default to 4,5,6 and 0,5,10)."""
    experiment = from_keywords(STUDY, dict(lists=lists, samples=samples, seed=seed))
    return STUDY.run(STUDY.spec(experiment))["results"]
