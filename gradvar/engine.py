"""The parallel Monte Carlo engine: the one place that knows about threads and chunks.

For one cell and one estimator, ``simulate`` runs ``n`` independent gradient estimates in
fixed-size chunks.  Each chunk (a function of n and P only, never of the thread count)
writes its central moments; chunks are merged in chunk order into ``GROUPS`` contiguous
groups, so the result is a deterministic function of the seed, identical with 1 or 2
threads.  Memory is one chunk buffer per thread plus one small record per chunk of a
block: bounded in n.

Parallelism: ``numba.get_num_threads()`` worker threads (set it with
``numba.set_num_threads`` or NUMBA_NUM_THREADS) each call the compiled, GIL-free
``run_chunks`` on small runs of chunks taken from a shared queue, so a thread whose core
is shared with another process simply takes fewer chunks, and idle workers sleep (no
OpenMP spinning).  Measured on the shared 2-core machine with the same kernels: idle, both
reach about 2x the one-thread rate; at load ~1 the queue did 295-392 M/s (sf) against
288-318 M/s for a ``prange`` loop (static schedule: the block waits for the thread whose
core is shared); at load ~2 ``prange`` stayed near 1x (omp layer, also with
OMP_WAIT_POLICY=PASSIVE or the workqueue layer).  A new combination also compiles about
1.2 s faster without the parfor pass.

Hot path (per chunk, per thread): ``fill`` writes the estimates into the thread's (m, P)
buffer, then ``moments`` makes two passes over it.  Both come from the module generated
for the (family, objective, estimator) combination by :mod:`gradvar.kernels.codegen`, which
also owns the on-disk kernel cache.

A run can also travel as a :class:`Task`: names and plain values (plus the source of any
plugin file its entries come from), picklable, resolved in the registries of the process
that runs it; parts of a run over whole groups of chunks :func:`merge` bit for bit.
"""

import atexit
import hashlib
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gradvar import interrupt
from gradvar.kernels import codegen, moments, rng

CHUNK_MAX = 16384  # estimates per chunk (the unit of moments)
CHUNK_SAMPLES = 2**24  # at most this many samples in a chunk (batch x estimates): ~0.1 s
CHUNK_VALUES = 2**19  # at most this many values (P per estimate) in a chunk buffer: 4 MB
GROUPS = 32  # contiguous groups of chunks, for batch-means / jackknife intervals
BLOCK_CHUNKS = 1024  # chunks per block: the progress granularity (17M estimates at most)
BLOCK_RECORDS = 2**16  # and at most this many chunk records times P per block (memory)
TASK_CHUNKS = 4  # chunks a worker thread takes from the queue at a time
PILOT_SIZE = 100_000  # samples in the independent pilot batch of the mean/optimal baselines
WAIT = 0.1  # seconds between checks for a swallowed Ctrl-C while the kernel threads run


@dataclass(frozen=True)
class Cell:
    """One parameter point: family and objective parameters, estimator options (tau, ...)
    and batch.  ``options`` maps option names to values; an option no estimator of the
    run reads is NaN or absent."""

    family: object  # registry.Family
    family_values: dict
    objective: object  # registry.Objective
    objective_values: dict
    options: dict = field(default_factory=dict)
    batch: int = 1

    @property
    def tau(self):
        return float(self.options.get("tau", math.nan))

    def opts(self):
        """The kernels' ``opts`` array: every registered option's value (NaN if unset)."""
        from gradvar.model import OPTIONS

        return np.array([float(self.options.get(name, math.nan)) for name in OPTIONS])

    @property
    def dim(self):
        return self.family.dim(self.family_values)

    @property
    def coords(self):
        return self.family.coords(self.family_values)

    @property
    def width(self):
        dim = self.dim
        return max(dim, self.family.state_size(dim), len(self.coords))

    @property
    def shape(self):
        """(P, width, S): gradient coordinates, scratch row width, noise state size (the
        generated kernels' literal sizes, :func:`gradvar.kernels.codegen.compiled`)."""
        return len(self.coords), self.width, self.family.state_size(self.dim)

    def fp(self):
        return self.family.prepare(self.family_values)

    def objp(self):
        return self.objective.pack(self.objective_values, self.dim)


@dataclass
class Moments:
    """What one estimator produced in one cell: moments overall and per group."""

    n_finite: int
    nonfinite: int
    moments: np.ndarray  # (P, 4): mean, M2, M3, M4
    group_n: np.ndarray  # (G,)
    group_moments: np.ndarray  # (G, P, 4)
    seconds: float
    aux: np.ndarray = field(default=None)


def chunking(n, p=1, batch=1):
    """Chunk size and chunk count for n estimates of P coordinates at ``batch`` samples each
    (a function of n, P and batch only, never of the thread count); a chunk holds at most
    CHUNK_SAMPLES samples, so one kernel call returns quickly whatever the batch."""
    size = max(1, min(CHUNK_MAX, CHUNK_VALUES // p, -(-n // GROUPS), CHUNK_SAMPLES // batch))
    return size, -(-n // size)


def threads():
    """Worker threads: ``numba.get_num_threads()`` (1 under NUMBA_DISABLE_JIT=1)."""
    import numba

    return 1 if numba.config.DISABLE_JIT else max(1, numba.get_num_threads())


def run_parallel(kernel, lo, hi, scratch, args_before, args_after):
    """``kernel(*args_before, a, b, lo, *scratch[t], *args_after)`` over chunks [lo, hi) in
    runs of TASK_CHUNKS taken by ``len(scratch)`` threads from a shared queue.  Which
    thread runs a chunk never changes what the chunk computes.

    The kernels run in daemon threads while the main thread waits, so Ctrl-C is seen at
    once (:mod:`gradvar.interrupt`): the stop flag ends the queue, and the process can exit
    without joining a kernel still in flight (one call is at most TASK_CHUNKS chunks of
    CHUNK_SAMPLES samples).
    """
    lock = threading.Lock()
    state = {"next": lo, "stop": False, "error": None}

    def worker(own):
        try:
            while True:
                with lock:
                    a = state["next"]
                    if a >= hi or state["stop"]:
                        return
                    state["next"] = b = min(hi, a + TASK_CHUNKS)
                kernel(*args_before, a, b, lo, *own, *args_after)
        except BaseException as err:  # re-raised in the main thread
            state["error"], state["stop"] = err, True

    workers = [
        threading.Thread(target=worker, args=(own,), name="gradvar", daemon=True) for own in scratch
    ]
    try:
        interrupt.check()
        for t in workers:
            t.start()
        for t in workers:
            while t.is_alive():  # not join(): a swallowed Ctrl-C is seen within WAIT s
                t.join(WAIT)
                interrupt.check()
    finally:
        state["stop"] = True
    if state["error"] is not None:
        raise state["error"]


def baseline_aux(module, cell, baseline, seed, p):
    """aux for sf-baseline: [mode, b_1..b_P], b from an independent pilot batch (see
    :mod:`gradvar.model.baselines`)."""
    from gradvar.model import BASELINES

    base = BASELINES[baseline]
    aux = np.zeros(1 + p)
    aux[0] = base.mode
    if not base.needs_pilot:
        return aux
    sums = np.zeros(1 + 2 * p)
    key = rng.stream_key(seed, rng.PILOT)
    module.pilot(cell.fp(), cell.objp(), key, PILOT_SIZE, p, np.empty((5, cell.width)), sums)
    aux[1:] = base.fixed(sums[0], sums[1 : 1 + p], sums[1 + p :], PILOT_SIZE)
    return aux


def baseline_needs_pilot(baseline):
    from gradvar.model import BASELINES

    return BASELINES[baseline].needs_pilot


def estimator_aux(module, cell, estimator, baseline, seed, exact_grad):
    """What the estimator kernel reads from ``aux``: the exact gradient for a deterministic
    estimator, the baseline for one with a baseline option, else zeros."""
    if estimator.deterministic:
        return np.asarray(exact_grad, dtype=float)
    if estimator.uses_baseline:
        return baseline_aux(module, cell, baseline, seed, len(cell.coords))
    if estimator.aux is not None:
        return np.asarray(estimator.aux(cell), dtype=float)
    return np.zeros(1 + len(cell.coords))


def chunk_scratch(estimator, cell, size):
    """One thread's scratch for the generated ``run_chunks``: the estimator's work rows, the
    chunk buffer (size, P), the same buffer read as :func:`gradvar.kernels.moments.as_lanes`
    and the moments' accumulators."""
    p = len(cell.coords)
    buf = np.empty((size, p))
    work = np.empty((estimator.work_rows, cell.width))
    return work, buf, moments.as_lanes(buf), np.empty(moments.scratch_shape(p))


def simulate(
    cell, estimator, n, seed, baseline="mean", exact_grad=None, progress=None, chunks=None
):
    """Run n estimates of ``estimator`` in ``cell``; return their :class:`Moments`.

    ``exact_grad`` feeds the ``exact`` estimator; ``progress(k)`` is called with the number
    of estimates finished since the last call.  ``chunks = (lo, hi)`` runs only the chunks
    lo .. hi - 1 of the run's :func:`chunking` (the moments of the other groups are empty):
    parts of one run that :func:`merge` combines.
    """
    p = len(cell.coords)
    module = codegen.compiled(cell.family, cell.objective, estimator, cell.shape)
    key = rng.stream_key(seed, rng.MAIN)
    fp, objp, opts = cell.fp(), cell.objp(), cell.opts()
    size, nchunks = chunking(n, p, int(cell.batch))
    lo, hi = (0, nchunks) if chunks is None else (int(chunks[0]), int(chunks[1]))
    if not 0 <= lo <= hi <= nchunks:
        raise ValueError(f"chunks {chunks!r} are not a range of the run's {nchunks} chunks")
    groups = min(GROUPS, nchunks)
    group_of = (np.arange(nchunks) * groups // nchunks).astype(np.int64)
    group_mom = np.zeros((groups, p, 4))
    group_n = np.zeros(groups, dtype=np.int64)
    group_bad = np.zeros(groups, dtype=np.int64)
    block = max(1, min(BLOCK_CHUNKS, BLOCK_RECORDS // p))
    scratch = [
        chunk_scratch(estimator, cell, size)
        for _ in range(max(1, min(threads(), -(-(hi - lo) // TASK_CHUNKS))))
    ]
    # compile (or load from the cache) outside the timed region: zero chunks, zero pilot samples
    module.run_chunks(
        fp,
        objp,
        opts,
        np.zeros(1 + p),
        key,
        int(cell.batch),
        int(n),
        size,
        0,
        0,
        0,
        *scratch[0],
        np.empty((0, p, 4)),
        np.empty((0, 2), dtype=np.int64),
    )
    if estimator.uses_baseline and baseline_needs_pilot(baseline):
        module.pilot(fp, objp, key, 0, p, np.empty((5, cell.width)), np.zeros(1 + 2 * p))
    # and the merge of chunk records (a first call compiles it on a cold cache: 0.3 s)
    moments.merge_chunks(
        np.empty((0, p, 4)),
        np.empty((0, 2), dtype=np.int64),
        group_of[:0],
        group_mom,
        group_n,
        group_bad,
    )
    t0 = time.perf_counter()
    with np.errstate(over="ignore"):  # uint64 wrap-around is intended (pure-Python mode)
        aux = estimator_aux(module, cell, estimator, baseline, seed, exact_grad)
        head = (fp, objp, opts, aux, key, int(cell.batch), int(n), size)
        for chunk0 in range(lo, hi, block):
            count = min(block, hi - chunk0)
            mom = np.empty((count, p, 4))
            cnt = np.empty((count, 2), dtype=np.int64)
            run_parallel(module.run_chunks, chunk0, chunk0 + count, scratch, head, (mom, cnt))
            moments.merge_chunks(
                mom, cnt, group_of[chunk0 : chunk0 + count], group_mom, group_n, group_bad
            )
            if progress is not None:
                progress(min(n, (chunk0 + count) * size) - min(n, chunk0 * size))
    seconds = time.perf_counter() - t0
    total = np.zeros((p, 4))
    n_total = 0
    for gi in range(groups):
        n_total = merge_chunks_total(n_total, total, group_n[gi], group_mom[gi])
    return Moments(int(n_total), int(group_bad.sum()), total, group_n, group_mom, seconds, aux)


def merge_chunks_total(na, a, nb, b):
    return int(moments.merge_into(int(na), a, int(nb), b))


def group_chunks(n, p=1, batch=1):
    """The chunk range (lo, hi) of every group of a run of n estimates of P coordinates at
    ``batch`` samples each: parts of a run made of whole groups :func:`merge` into the full
    run bit for bit."""
    _, nchunks = chunking(n, p, batch)
    groups = min(GROUPS, nchunks)
    group_of = np.arange(nchunks) * groups // nchunks
    return [
        (int(np.searchsorted(group_of, g)), int(np.searchsorted(group_of, g, side="right")))
        for g in range(groups)
    ]


def merge(parts):
    """The :class:`Moments` of one run from those of disjoint chunk ranges of it (``simulate``
    with ``chunks``), given in chunk order.  Each group's moments are merged over the parts
    in order, then the groups as ``simulate`` does: when no group is split between parts
    (ranges from :func:`group_chunks`) the result is the full run's bit for bit; otherwise
    it equals it up to rounding.  ``seconds`` is the sum, ``aux`` the first part's."""
    parts = list(parts)
    group_mom = np.zeros_like(parts[0].group_moments)
    group_n = np.zeros_like(parts[0].group_n)
    for part in parts:
        for gi in range(len(group_n)):
            group_n[gi] = merge_chunks_total(
                group_n[gi], group_mom[gi], part.group_n[gi], part.group_moments[gi]
            )
    total = np.zeros(group_mom.shape[1:])
    n_total = 0
    for gi in range(len(group_n)):
        n_total = merge_chunks_total(n_total, total, group_n[gi], group_mom[gi])
    nonfinite = sum(part.nonfinite for part in parts)
    seconds = sum(part.seconds for part in parts)
    return Moments(int(n_total), int(nonfinite), total, group_n, group_mom, seconds, parts[0].aux)


def estimates(cell, estimator, n, seed, baseline="mean", exact_grad=None, start=0):
    """The raw estimates number ``start .. start + n - 1`` as an (n, P) array.

    For small n only (training loops, diagnostics): the same noise and kernels as
    :func:`simulate`, without the streaming moments.
    """
    p = len(cell.coords)
    module = codegen.compiled(cell.family, cell.objective, estimator, cell.shape)
    key = rng.stream_key(seed, rng.MAIN)
    buf = np.empty((n, p))
    with np.errstate(over="ignore"):
        aux = estimator_aux(module, cell, estimator, baseline, seed, exact_grad)
        module.estimates(
            cell.fp(),
            cell.objp(),
            cell.opts(),
            aux,
            key,
            int(cell.batch),
            int(start),
            np.empty((estimator.work_rows, cell.width)),
            buf,
        )
    return buf


# --- a run as plain data: what another process (a Dask worker, ...) needs ---------------------
def _plain(value):
    """A parameter value as plain Python: a float, or a tuple of floats for a vector."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else tuple(float(v) for v in array.ravel())


def _values(plain):
    """The inverse of :func:`_plain` over a dict: floats and float arrays, as Cells hold."""
    return {
        k: np.asarray(v, dtype=float) if isinstance(v, tuple) else float(v)
        for k, v in plain.items()
    }


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_PLUGINS = {}  # sha256 -> name of the module: the plugins loaded in this process
_PLUGIN_DIR = []  # this process's private folder for plugin sources
_PLUGIN_LOCK = threading.Lock()


def plugin_entry(path):
    """``(file name, source text, sha256)`` of a plugin file, for :attr:`Task.plugins`.

    A plugin is one Python file that registers families, objectives or estimators with the
    decorators of :mod:`gradvar.model.registry` and imports only installed packages.  If this
    process imported that file already, it counts as loaded here.  Running a task runs its
    plugins' code: the sha256 catches a source altered or damaged on the way, it does not
    make an untrusted task safe."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    sha = _sha256(text)
    real = os.path.realpath(path)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.realpath(file) == real:
            _PLUGINS.setdefault(sha, module.__name__)
    return (path.name, text, sha)


def load_plugins(plugins):
    """Import every plugin ``(file name, source text, sha256)`` whose hash is not loaded in
    this process yet, from its source written to a private temporary folder; a source whose
    sha256 does not match is refused (ValueError) before anything is imported."""
    for name, text, sha in plugins:
        if _sha256(text) != sha:
            raise ValueError(
                f"plugin {name!r}: the source does not match its sha256 {sha[:12]}...; refused"
            )
        stem = name[:-3] if name.endswith(".py") else ""
        if not stem.isidentifier() or os.path.basename(name) != name:
            raise ValueError(f"plugin {name!r}: not the file name of a Python module")
    with _PLUGIN_LOCK:
        for name, text, sha in plugins:
            if sha in _PLUGINS:
                continue
            if not _PLUGIN_DIR:
                _PLUGIN_DIR.append(tempfile.mkdtemp(prefix="gradvar-plugins-"))  # mode 0700
                atexit.register(shutil.rmtree, _PLUGIN_DIR[0], True)
            folder = os.path.join(_PLUGIN_DIR[0], sha[:16])
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            module_name = f"gradvar_plugin_{name[:-3]}_{sha[:12]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
            _PLUGINS[sha] = module_name


def _registered(table, key, entry, what):
    if table.get(key) != entry:
        raise ValueError(
            f"{what} {key!r} is not the registered entry of that name: a Task names registry "
            "entries, so register it in a plugin file (the decorators of "
            "gradvar.model.registry) and pass plugins=[path]"
        )


@dataclass(frozen=True)
class Task:
    """One :func:`simulate` call as names and plain values: picklable, and runnable in any
    process with gradvar (a worker of a cluster, a fresh interpreter).

    :meth:`run` resolves the names in the registries of the process it runs in, after
    importing the ``plugins`` not loaded there yet: ``(file name, source text, sha256)`` of
    the Python files that register entries outside gradvar (:func:`plugin_entry`).  The
    moments are those :func:`simulate` gives in the process that built the task, bit for
    bit.  ``chunks = (lo, hi)`` runs part of the run; parts over whole groups
    (:func:`group_chunks`) :func:`merge` into the full run bit for bit.
    """

    family: str
    family_values: dict
    objective: str
    objective_values: dict
    options: dict
    batch: int
    estimator: str
    baseline: str | None
    n: int
    seed: int
    exact_grad: tuple | None = None
    chunks: tuple | None = None
    plugins: tuple = ()

    @classmethod
    def from_cell(
        cls, cell, estimator, n, seed, baseline="mean", exact_grad=None, chunks=None, plugins=()
    ):
        """The task of ``simulate(cell, estimator, n, seed, baseline, exact_grad, chunks=...)``;
        ``plugins`` are the paths of the plugin files the entries come from."""
        from gradvar.model import registry

        fam, obj = cell.family.name, cell.objective.name
        _registered(registry.FAMILIES, fam, cell.family, "family")
        _registered(registry.OBJECTIVES, (fam, obj), cell.objective, "objective")
        _registered(registry.ESTIMATORS, estimator.name, estimator, "estimator")
        return cls(
            family=fam,
            family_values={k: _plain(v) for k, v in cell.family_values.items()},
            objective=obj,
            objective_values={k: _plain(v) for k, v in cell.objective_values.items()},
            options={k: float(v) for k, v in cell.options.items()},
            batch=int(cell.batch),
            estimator=estimator.name,
            baseline=baseline,
            n=int(n),
            seed=int(seed),
            exact_grad=None if exact_grad is None else _plain(np.ravel(exact_grad)),
            chunks=None if chunks is None else (int(chunks[0]), int(chunks[1])),
            plugins=tuple(plugin_entry(path) for path in plugins),
        )

    def cell(self):
        """The :class:`Cell`, resolved in this process's registries (plugins loaded first)."""
        load_plugins(self.plugins)
        from gradvar.model import expressions, registry

        try:
            family = registry.FAMILIES[self.family]
        except KeyError as err:
            raise ValueError(f"not registered in this process: {err}") from None
        if expressions.is_expression(family, self.objective):
            # rebuilt from its text, for its own parameters (this process may hold the same
            # text with other parameter names from another task)
            from gradvar import spec

            objective = spec.objective_entry(family, self.objective, tuple(self.objective_values))
        else:
            objective = registry.OBJECTIVES[(self.family, self.objective)]
        return Cell(
            family,
            _values(self.family_values),
            objective,
            _values(self.objective_values),
            dict(self.options),
            int(self.batch),
        )

    def run(self, progress=None):
        """Run the task here; return its :class:`Moments`."""
        cell = self.cell()
        from gradvar.model import registry

        if self.estimator not in registry.ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} is not registered in this process")
        exact = None if self.exact_grad is None else np.asarray(self.exact_grad, dtype=float)
        return simulate(
            cell,
            registry.ESTIMATORS[self.estimator],
            self.n,
            self.seed,
            baseline=self.baseline,
            exact_grad=exact,
            progress=progress,
            chunks=self.chunks,
        )
