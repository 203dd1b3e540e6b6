"""Training trajectories: gradient ascent or descent driven by each estimator.

Every step draws ``replicates`` gradient estimates at the current parameters through the
engine (same kernels and noise design as ``compare``); the first drives the update and all
of them give the variance of one estimate at that point (``grad_var``).  Two problems:

- ``bump``: the discretized-Gaussian toy of docs/math.md §3: categorical logits
  o_j = exp(-(x_j - m)^2) at positions x = 0..4, weights w = 1..5, maximise E[w . y] from
  m = 2 with learning rate 1; ``train_positions`` also trains x (as the original write-up).
- ``bernoulli-toy``: minimise E[(b - t)^2], t = 0.499, b ~ Bernoulli(sigmoid(logit)) from
  logit 0 with Adam (lr 0.01): the true gradient (1 - 2t) p (1 - p) is tiny.

``rebar`` uses ``tau`` and ``eta`` fixed; the train-only ``relax`` (gradvar.model.relax)
starts from them and trains its control variate (eta, log tau and a small network) on the
same sample that drives each step, with the problem's optimizer and learning rate (as the
RELAX authors' toy); ``cv_tau`` and ``cv_eta`` record the values each step used.

With a checkpoint folder (``gradvar train`` runs into DIR.partial/), each finished trajectory
(estimator x seed) is saved there and read back, so Ctrl-C keeps them and ``--resume``
continues with the next one (a trajectory is the unit: the optimizers' state is not saved
mid-way); the resumed table equals the uninterrupted one byte for byte.  On a Dask cluster
(``--scheduler``) each trajectory is one task (:meth:`gradvar.executor.Cluster.map_ordered`),
saved as it comes back and assembled in the local order: the same table.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gradvar import engine, truth
from gradvar.kernels import rng
from gradvar.model import registry
from gradvar.model import relax as relax_model
from gradvar.studies.base import CheckedTables, Study, check_unknown_keywords, from_keywords

REPLICATES = 100  # estimates per step used for grad_var
COLUMNS = [
    "problem",
    "estimator",
    "baseline",
    "tau",
    "batch",
    "seed",
    "step",
    "param",
    "value",
    "objective",
    "grad",
    "grad_var",
    "eta",
    "cv_tau",
    "cv_eta",
]


@dataclass
class Problem:
    """A training problem: parameters, how they map to a cell, and the chain rule back."""

    name: str
    summary: str
    family: str
    objective: str
    objective_values: dict
    sign: float  # +1 ascent (maximise), -1 descent (minimise)
    defaults: dict = field(default_factory=dict)

    def initial(self, train_positions=False):
        raise NotImplementedError

    def family_values(self, params):
        raise NotImplementedError

    def chain(self, params, grads):
        """Gradients w.r.t. the family parameters (R, P) -> w.r.t. the trained params."""
        raise NotImplementedError


class Bump(Problem):
    def initial(self, train_positions=False):
        params = {"m": np.array([2.0])}
        if train_positions:
            params["x"] = np.arange(5.0)
        return params

    def positions(self, params):
        return params.get("x", np.arange(5.0))

    def family_values(self, params):
        x = self.positions(params)
        return {"logits": np.exp(-((x - params["m"][0]) ** 2))}

    def chain(self, params, grads):
        x = self.positions(params)
        d = x - params["m"][0]
        do_dm = 2.0 * d * np.exp(-d * d)  # d o_j / d m; d o_j / d x_j = -do_dm
        out = {"m": grads @ do_dm[:, None]}
        if "x" in params:
            out["x"] = -grads * do_dm
        return out


class BernoulliToy(Problem):
    def initial(self, train_positions=False):
        return {"logit": np.array([0.0])}

    def family_values(self, params):
        return {"logit": float(params["logit"][0])}

    def chain(self, params, grads):
        return {"logit": grads}


PROBLEMS = {
    "bump": Bump(
        "bump",
        "discretized Gaussian: logits exp(-(x - m)^2), maximise E[w . y]",
        "categorical",
        "linear",
        {"w": np.arange(1.0, 6.0)},
        +1.0,
        dict(
            estimator="exact,gumbel-softmax",
            steps=5,
            lr=1.0,
            optimizer="sgd",
            tau=1.0,
            eta=1.0,
            baseline="mean",
            seed="0",
        ),
    ),
    "bernoulli-toy": BernoulliToy(
        "bernoulli-toy",
        "minimise E[(b - 0.499)^2] over the logit",
        "bernoulli",
        "squared",
        {"t": 0.499},
        -1.0,
        dict(
            estimator="sf,sf-baseline,gumbel-softmax,st-gumbel,exact",
            steps=2000,
            lr=0.01,
            optimizer="adam",
            tau=0.5,
            eta=1.0,
            baseline="loo",
            seed="0,1,2,3,4",
        ),
    ),
}


class Adam:
    """Adam (Kingma & Ba 2015) with the usual beta1 = 0.9, beta2 = 0.999, eps = 1e-8."""

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m, self.v, self.t = {}, {}, 0

    def step(self, params, grads, sign):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m.get(k, 0.0) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, 0.0) + (1 - self.b2) * g * g
            mhat = self.m[k] / (1 - self.b1**self.t)
            vhat = self.v[k] / (1 - self.b2**self.t)
            params[k] = params[k] + sign * self.lr * mhat / (np.sqrt(vhat) + self.eps)


class SGD:
    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads, sign):
        for k, g in grads.items():
            params[k] = params[k] + sign * self.lr * g


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def step_seed(seed, step):
    """An independent seed per (seed, step), so each step sees fresh noise."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1, np.uint64)[0] >> 1)


def _names(params):
    out = []
    for k, v in params.items():
        out += [k] if k != "x" else [f"x[{j}]" for j in range(len(v))]
    return out


class RelaxState:
    """RELAX's trained control variate along one trajectory (see gradvar.model.relax)."""

    def __init__(self, seed, tau, eta, optimizer, lr):
        self.params = {"theta": relax_model.initial(seed, tau, eta)}
        self.opt = OPTIMIZERS[optimizer](lr)
        self.grads = None

    @property
    def tau_eta(self):
        theta = self.params["theta"]
        return float(np.exp(theta[1])), float(theta[0])

    def estimates(self, cell, seed, replicates):
        """``replicates`` estimates (replicates, 1) at the cell's logit; keeps d g^2 / d theta
        of the first (the one that drives the step) for :meth:`step`."""
        phi = float(cell.family_values["logit"])
        key = rng.stream_key(seed, rng.MAIN)
        u, v = relax_model.noise(key, replicates, cell.batch)
        at = cell.objective.derivatives_at
        g, dg = relax_model.estimates(phi, self.params["theta"], u, v, at, cell.objective_values)
        est = g.mean(axis=1)
        self.grads = {"theta": 2.0 * est[0] * dg[0].mean(axis=0)}
        return est[:, None]

    def step(self):
        self.opt.step(self.params, self.grads, -1.0)  # descent on g^2


def trajectory(
    problem,
    est,
    seed,
    steps,
    lr,
    optimizer,
    batch,
    tau,
    baseline,
    train_positions=False,
    replicates=REPLICATES,
    on_step=None,
    eta=1.0,
):
    """One training run; returns a list of row dicts (one per step and parameter)."""
    fam = registry.FAMILIES[problem.family]
    obj = registry.OBJECTIVES[(problem.family, problem.objective)]
    params = problem.initial(train_positions)
    opt = OPTIMIZERS[optimizer](lr)
    batch = max(batch, est.batch_needed(baseline))
    trained = RelaxState(seed, tau, eta, optimizer, lr) if est.train_only else None
    options = {o.name: o.default for o in registry.OPTIONS.values()}
    options.update(tau=tau, eta=eta)
    rows = []
    for step in range(steps + 1):
        cell = engine.Cell(
            fam,
            problem.family_values(params),
            obj,
            problem.objective_values,
            options=options,
            batch=batch,
        )
        states, probs = fam.outcomes(cell.family_values)
        objective = float(probs @ truth.objective_values_on(cell, states))
        grads = var = None
        cv_tau, cv_eta = trained.tau_eta if trained else (tau, eta)
        if step < steps:
            if trained:
                raw = trained.estimates(cell, step_seed(seed, step), replicates)
            else:
                raw = engine.estimates(
                    cell,
                    est,
                    1 if est.deterministic else replicates,
                    step_seed(seed, step),
                    baseline=baseline,
                    exact_grad=truth.exact_gradient(cell),
                )
            chained = problem.chain(params, raw)
            grads = {k: v[0] for k, v in chained.items()}
            var = {
                k: (v.var(axis=0, ddof=1) if len(v) > 1 else np.zeros(v.shape[1]))
                for k, v in chained.items()
            }
        names = iter(_names(params))
        uses_cv = est.uses("eta")
        for k, v in params.items():
            for j, value in enumerate(v):
                rows.append(
                    dict(
                        problem=problem.name,
                        estimator=est.name,
                        baseline=baseline if est.uses_baseline else "",
                        tau=tau if est.uses_tau else math.nan,
                        batch=batch,
                        seed=int(seed),
                        step=step,
                        param=next(names),
                        value=float(value),
                        objective=objective,
                        grad=float(grads[k][j]) if grads else math.nan,
                        grad_var=float(var[k][j]) if var else math.nan,
                        eta=eta if uses_cv else math.nan,
                        cv_tau=cv_tau if uses_cv else math.nan,
                        cv_eta=cv_eta if uses_cv else math.nan,
                    )
                )
        if on_step is not None:
            on_step(est.name, seed, step, params, objective)
        if step < steps:
            opt.step(params, grads, problem.sign)
            if trained:
                trained.step()
    return rows


def validate(
    problem="bump",
    estimator=None,
    seed=None,
    steps=None,
    lr=None,
    optimizer=None,
    batch=1,
    tau=None,
    baseline=None,
    train_positions=False,
    eta=None,
):
    """Check the options (SpecError naming the problem) and fill in the problem's defaults."""
    from gradvar import spec
    from gradvar.spec import SpecError, estimators_for, parse_count, parse_one, parse_values

    for key, value in (("problem", problem), ("optimizer", optimizer), ("baseline", baseline)):
        if value is not None and not isinstance(value, str):
            raise SpecError(f"{key}: expected a name, got {value!r}")
    if problem not in PROBLEMS:
        raise SpecError(f"unknown problem {problem!r}." + spec.suggest(problem, PROBLEMS))
    prob = PROBLEMS[problem]
    d = prob.defaults
    seeds = [
        parse_count(s, "seed")
        for s in parse_values(seed if seed is not None else d["seed"], "seed")
    ]
    steps = parse_count(steps if steps is not None else d["steps"], "steps")
    lr = parse_one(lr if lr is not None else d["lr"], "lr")  # a list is refused, not cut
    tau = parse_one(tau if tau is not None else d["tau"], "tau")
    eta = parse_one(eta if eta is not None else d["eta"], "eta")
    optimizer = d["optimizer"] if optimizer is None else optimizer
    baseline = d["baseline"] if baseline is None else baseline
    if any(s < 0 for s in seeds):
        raise SpecError("seed must be >= 0")
    seeds = [spec.check_seed(s) for s in seeds]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:  # a trajectory is keyed by (estimator, seed): the same seed twice is one run
        raise SpecError(f"seed {repeated[0]} is given twice: each seed is one trajectory")
    spec.check_size(steps, "steps", spec.MAX_STEPS)
    if not (math.isfinite(lr) and lr > 0):
        raise SpecError(f"lr must be finite and > 0, got {lr}")
    if not (math.isfinite(tau) and tau > 0):
        raise SpecError(f"tau must be finite and > 0, got {tau}")
    if not math.isfinite(eta):
        raise SpecError(f"eta must be finite, got {eta}")
    if optimizer not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer {optimizer!r}." + spec.suggest(optimizer, OPTIMIZERS))
    if baseline not in registry.BASELINES:
        choices = registry.BASELINES
        raise SpecError(f"unknown baseline {baseline!r}." + spec.suggest(baseline, choices))
    if train_positions and problem != "bump":
        raise SpecError("--train-positions applies to --problem bump only")
    batch = parse_count(parse_one(batch, "batch"), "batch")
    if batch < 1:
        raise SpecError(f"batch must be >= 1, got {batch}")
    spec.check_size(batch, "batch", spec.MAX_BATCH)
    chosen = d["estimator"] if estimator is None else estimator  # "" is an empty list
    ests = estimators_for(chosen, registry.FAMILIES[prob.family], train=True)
    return dict(
        prob=prob,
        ests=ests,
        seeds=seeds,
        steps=steps,
        lr=lr,
        optimizer=optimizer,
        batch=int(batch),
        tau=tau,
        eta=eta,
        baseline=baseline,
        train_positions=train_positions,
    )


def _run_one(v, est, seed, on_step):
    rows = trajectory(
        v["prob"],
        est,
        seed,
        v["steps"],
        v["lr"],
        v["optimizer"],
        v["batch"],
        v["tau"],
        v["baseline"],
        v["train_positions"],
        on_step=on_step,
        eta=v["eta"],
    )
    return pd.DataFrame(rows, columns=COLUMNS)


def run_named(v, estimator, seed):
    """One trajectory from plain arguments (what a Dask task carries): ``v`` with the
    problem's name for ``prob`` and no ``ests``, the estimator's name."""
    v = dict(v, prob=PROBLEMS[v["prob"]])
    return _run_one(v, registry.ESTIMATORS[estimator], seed, None)


def replay_steps(table, on_step):
    """Call ``on_step`` for every step of a trajectory run elsewhere, from its rows."""
    for step, rows in table.groupby("step", sort=True):
        params = {}
        for name, value in zip(rows["param"], rows["value"], strict=True):
            params.setdefault(name.partition("[")[0], []).append(value)
        params = {k: np.array(v) for k, v in params.items()}
        row = rows.iloc[0]
        on_step(row["estimator"], int(row["seed"]), int(step), params, float(row["objective"]))


def run_trajectories(v, on_step=None, checkpoint=None, progress=None, cluster=None):
    """Every (estimator, seed) trajectory of validated options ``v`` (see :func:`validate`),
    in that order; ``progress(1)`` after each.

    With ``checkpoint`` (a folder), each finished trajectory is saved there (CSV and check
    file) and read back; trajectories already saved are read instead of run again.  With
    ``cluster`` (a :class:`gradvar.executor.Cluster`) each trajectory is one task on its
    workers, saved as it comes back (``on_step`` replayed from its rows).
    """
    runs = [(est, s) for est in v["ests"] for s in v["seeds"]]
    parts = [None] * len(runs)
    store = None if checkpoint is None else CheckedTables(checkpoint, "run", ("results",))

    def finish(i, table):
        if store is not None:
            (table,) = store.save(i, [table])
        parts[i] = table
        if progress is not None:
            progress(1)

    for i in range(len(runs) if store is not None else 0):
        saved = store.load(i)
        if saved is not None:
            parts[i] = saved[0]
            if progress is not None:
                progress(1)
    todo = [i for i, part in enumerate(parts) if part is None]
    if cluster is None:
        for i in todo:
            finish(i, _run_one(v, *runs[i], on_step))
    else:
        plain = dict(v, prob=v["prob"].name, ests=None)
        calls = {i: (plain, runs[i][0].name, runs[i][1]) for i in todo}
        for i, table in cluster.map_ordered(run_named, calls):
            if on_step is not None:
                replay_steps(table, on_step)
            finish(i, table)
    return pd.concat(parts, ignore_index=True)


@dataclass
class TrainSpec:
    options: dict  # what validate() returns
    no_plot: bool = False
    on_step: object = None  # called after every step: (estimator, seed, step, params, objective)


class Train(Study):
    """``gradvar train``; ``run``'s ``progress`` counts trajectories (``spec.on_step`` sees
    every step)."""

    name = "train"
    KEYS = ("problem", "estimator", "seed", "steps", "lr", "optimizer", "batch", "tau", "eta")
    resumable = True  # one checkpoint per finished trajectory
    unit = "traj"  # the progress bar counts trajectories
    distributed = True  # one Dask task per trajectory

    def kept(self, spec, cells):
        from gradvar import io

        done = len(list(cells.glob(f"*{io.CHECK_SUFFIX}"))) if cells.is_dir() else 0
        return f"{done} finished trajectory(ies)"

    def allowed_keys(self):
        return {*self.KEYS, "baseline", "train-positions", "no-plot"}

    def spec(self, experiment):
        arguments = {k: experiment.get(k) for k in self.KEYS}
        arguments["problem"] = "bump" if arguments["problem"] is None else arguments["problem"]
        arguments["batch"] = experiment.get("batch", 1)
        arguments["baseline"] = experiment.get("baseline")
        arguments["train_positions"] = bool(experiment.get("train-positions"))
        return TrainSpec(validate(**arguments), bool(experiment.get("no-plot")))

    def resolved(self, spec):
        v = spec.options
        seeds = [int(s) for s in v["seeds"]]
        return {
            "command": self.name,
            "problem": v["prob"].name,
            "estimator": [e.name for e in v["ests"]],
            "seed": seeds if len(seeds) > 1 else seeds[0],
            "steps": v["steps"],
            "lr": v["lr"],
            "optimizer": v["optimizer"],
            "batch": v["batch"],
            "tau": v["tau"],
            "eta": v["eta"],
            "baseline": v["baseline"],
            "train-positions": v["train_positions"],
            "no-plot": spec.no_plot,
        }

    def total(self, spec):
        return len(spec.options["ests"]) * len(spec.options["seeds"])

    def run(self, spec, progress=None, checkpoint=None, cluster=None):
        v, on_step = spec.options, spec.on_step
        return {"results": run_trajectories(v, on_step, checkpoint, progress, cluster)}


STUDY = Train()


def train(
    problem="bump",
    estimator=None,
    seed=None,
    steps=None,
    lr=None,
    optimizer=None,
    batch=1,
    tau=None,
    baseline=None,
    train_positions=False,
    on_step=None,
    eta=None,
    scheduler=None,
    **unknown,
):
    """Run every (estimator, seed) trajectory; the ``train`` results table as a DataFrame.

    Arguments mirror ``gradvar train``; None takes the problem's default.  ``scheduler``
    (``"local:2"``, ``"tcp://HOST:PORT"``) runs each trajectory as a task on a Dask cluster.
    """
    check_unknown_keywords(STUDY, unknown, "train")
    experiment = from_keywords(
        STUDY,
        dict(
            problem=problem,
            estimator=estimator,
            seed=seed,
            steps=steps,
            lr=lr,
            optimizer=optimizer,
            batch=batch,
            tau=tau,
            eta=eta,
            baseline=baseline,
            train_positions=train_positions,
        ),
    )
    spec = replace(STUDY.spec(experiment), on_step=on_step)
    from gradvar import executor

    with executor.session(scheduler) as cluster:
        return STUDY.run(spec, cluster=cluster)["results"]
