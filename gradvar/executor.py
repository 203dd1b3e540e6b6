"""Running the cells of a sweep on a Dask cluster (``--scheduler``), with the bytes of a local run.

Without ``--scheduler`` (and without DASK_SCHEDULER_ADDRESS) nothing here runs and Dask is
not imported: :func:`session` is then an empty context.  With it, :class:`Cluster` connects
to a running scheduler (``tcp://HOST:PORT``) or starts a ``distributed.LocalCluster`` of N
worker processes (``local``, ``local:N``), and :meth:`Cluster.outcomes` runs a plan's cells:

- the units are those of the local path (:func:`gradvar.studies.compare.cell_units`): one per
  (cell, estimator, baseline) where the plan runs it (an estimator that ignores a swept
  option runs once).  A unit of more than TASK_SAMPLES samples is split into
  blocks of whole groups of chunks (:func:`gradvar.engine.group_chunks`), so one huge cell
  spreads over the cluster too; every block is an :class:`gradvar.engine.Task`;
- ground truth (exact gradient, relaxed gradient, exact variances: they run compiled kernels
  on injected noise) is one task per cell, so kernels compile on the workers only, each in its
  own on-disk cache (GRADVAR_CACHE_DIR or the default), never on the client;
- the client merges the blocks of a unit in chunk order (:func:`gradvar.engine.merge`), which
  gives the local run's moments bit for bit, and hands each cell back once its tasks are
  done: the checkpoints of ``--resume`` and the tables
  (in cell order) are those of the local run.

:meth:`Cluster.map_ordered` runs one call of a module-level function per task instead (the
trajectories of ``train``), yielding each result as it finishes.

A lost worker costs only time: Dask reruns its tasks elsewhere and they compute the same
numbers.  Each worker runs one task at a time per Dask thread (give a worker one per core:
``dask worker``'s default), each task with ``--threads`` engine threads (default 1; on a
``local:N`` cluster the cores shared among the N workers).

Warnings raised in a task on a worker (numerical ones, from the ground truth's quadratures for
example) are recorded there, sent back with the task's result and issued again on the client
(:func:`_recorded`, :func:`_reissue`): the command counts them in its one note as it does
for a local run, and the workers print none of them line by line.
"""

import importlib.util
import logging
import math
import os
import platform
import sys
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np

from gradvar.spec import SpecError

INSTALL = "pip install 'gradvar[dask]'"
CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up (exit 1)
TASK_SAMPLES = 2**27  # a unit of more samples (estimates x batch) is split into blocks (~0.5 s)
SCHEMES = ("tcp", "tls", "ws", "wss", "inproc")


class SchedulerError(RuntimeError):
    """The scheduler cannot be reached (or the local cluster does not start)."""


def parse(address):
    """The validated scheduler address: ``local``, ``local:N`` or ``SCHEME://HOST:PORT``
    (``HOST:PORT`` means tcp).  Raises SpecError (bad text, or Dask not installed)."""
    text = str(address).strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if count and not (count.isdigit() and int(count) >= 1):
            raise SpecError(f"--scheduler: local:N needs a whole number N >= 1, got {text!r}")
    else:
        scheme, sep, rest = text.rpartition("://")
        if not sep:
            scheme, rest, text = "tcp", text, f"tcp://{text}"
        host, colon, port = rest.rpartition(":")
        if scheme not in SCHEMES or not colon or not host or not port.isdigit():
            raise SpecError(
                f"--scheduler: expected tcp://HOST:PORT, local or local:N, got {address!r}"
            )
    if not installed():
        raise SpecError(f"--scheduler needs Dask's distributed scheduler: {INSTALL}")
    return text


def installed():
    """Whether Dask's distributed scheduler can be imported here."""
    return importlib.util.find_spec("distributed") is not None


def session(address, threads=None):
    """The cluster of a run as a context manager: a :class:`Cluster`, or None (local run)."""
    return nullcontext(None) if address is None else Cluster(address, threads)


def loaded_plugins():
    """``(file name, source, sha256)`` of every plugin this process imported through gradvar
    (``--plugin``, a ``plugins`` key, :func:`gradvar.plugins.load`): the tasks carry them,
    since a worker on another host lacks them."""
    from gradvar import engine

    entries = []
    for sha, name in list(engine._PLUGINS.items()):
        file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(file, str) and os.path.exists(file):
            entry = engine.plugin_entry(file)
            if entry[2] == sha:
                entries.append(entry)
    return tuple(entries)


# --- what runs on a worker ---------------------------------------------------------------------
def _engine_threads(threads):
    """Use ``threads`` engine threads for the task in this (Dask) thread."""
    import numba

    numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))  # thread-local


def dask_setup(worker):
    """Preload of the workers of a ``local`` cluster: they ignore SIGINT, which a terminal's
    Ctrl-C sends to all of them; the client cancels the run and closes the cluster."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_TASK = threading.local()  # .caught: the warnings of the task running in this thread
_SHOWN = [warnings.showwarning]  # what _show replaced: it shows the warnings of no task
_LOCK = threading.Lock()


def _show(message, category, filename, lineno, file=None, line=None):
    caught = getattr(_TASK, "caught", None)
    if caught is None:  # not raised by a task: shown as before
        return _SHOWN[0](message, category, filename, lineno, file, line)
    caught.append((str(message), category))


def _recorded(fn, *args):
    """``(fn(*args), warnings)``: the warnings ``fn`` raised in this thread, as (message,
    category) pairs, every occurrence (the client's filter is "always").  Thread-safe where
    ``warnings.catch_warnings`` is not: one ``showwarning`` for the worker process files each
    warning with the task of its thread (installed again if something replaced it)."""
    with _LOCK:
        if warnings.showwarning is not _show:
            _SHOWN[0] = warnings.showwarning
            warnings.showwarning = _show
        warnings.simplefilter("always")
    _TASK.caught = caught = []
    try:
        return fn(*args), caught
    finally:
        _TASK.caught = None


def _reissue(caught):
    """Issue the warnings a task recorded on its worker (:func:`_recorded`) on the client."""
    for message, category in caught:
        warnings.warn(message, category, stacklevel=2)


def run_block(task, threads=1, truth=None):
    """Run one block (a :class:`gradvar.engine.Task`) on a worker: (Moments, worker, seconds,
    warnings).  ``truth`` (the cell's :func:`run_truth`) gives a deterministic estimator its
    gradient."""
    from distributed import get_worker

    t0 = time.perf_counter()
    _engine_threads(threads)
    if truth is not None:
        task = replace(task, exact_grad=tuple(float(v) for v in truth["exact_grad"]))
    mom, caught = _recorded(task.run)
    return mom, get_worker().address, time.perf_counter() - t0, caught


def run_call(fn, args, threads=1, plugins=()):
    """``fn(*args)`` on a worker (after importing the run's ``plugins``): (result, worker,
    seconds, warnings), for :meth:`Cluster.map_ordered`."""
    from distributed import get_worker

    from gradvar import engine

    t0 = time.perf_counter()
    _engine_threads(threads)
    engine.load_plugins(plugins)
    result, caught = _recorded(fn, *args)
    return result, get_worker().address, time.perf_counter() - t0, caught


def run_truth(tasks, relaxed):
    """The ground truth of one cell on a worker: its exact gradient, the relaxed gradient
    (when ``relaxed``), (exact mean, exact variance, note) of every unit in ``tasks`` and the
    warnings raised computing them."""
    result, caught = _recorded(_truth, tasks, relaxed)
    return {**result, "warnings": caught}


def _truth(tasks, relaxed):
    from gradvar import truth
    from gradvar.model import ESTIMATORS

    cell = tasks[0].cell()
    return {
        "exact_grad": truth.exact_gradient(cell),
        "relaxed": truth.relaxed_gradient(cell) if relaxed else None,
        "units": {
            (t.estimator, t.baseline): truth.exact(cell, ESTIMATORS[t.estimator], t.baseline)
            for t in tasks
        },
    }


def describe_worker(dask_worker):
    """This worker's CPU model, cores, Dask threads and library versions (meta.json: results
    are byte-identical across workers with the same CPU and versions)."""
    import distributed

    from gradvar import io

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {**io.versions(), "distributed": distributed.__version__}
    host = {"host": platform.node(), "cores": os.cpu_count(), "threads": dask_worker.state.nthreads}
    return {"cpu": cpu, **host, **versions}


# --- the client side ---------------------------------------------------------------------------
@dataclass
class Outcome:
    """What the cluster computed for one cell: truth and moments per unit, as the local path
    would have (``units[(estimator, baseline)] = (Moments, exact_var, note)``)."""

    exact_grad: np.ndarray = None
    relaxed: np.ndarray = None
    units: dict = field(default_factory=dict)


def _quiet_logging():
    """Dask logs INFO lines on stderr by default, and tracebacks of its own shutdown after a
    Ctrl-C: silenced.  A task's failure still reaches the user, as the run's error."""
    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def local_cluster(workers):
    """A ``distributed.LocalCluster`` of ``workers`` processes with one Dask thread each."""
    import dask
    import distributed

    # the tasks are independent and alike: the scheduler sends them all to the workers at
    # once instead of one per free thread (worker-saturation), saving a round trip per task
    with dask.config.set({"distributed.scheduler.worker-saturation": math.inf}):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never a clash with another cluster
            silence_logs=logging.CRITICAL,
            preload=["gradvar.executor"],  # dask_setup: Ctrl-C is the client's
        )


class Cluster:
    """A Dask client (and the LocalCluster it started, if any) running the cells of a run."""

    def __init__(self, address, threads=None):
        self.address = parse(address)
        self.given_threads = threads
        self.threads = threads or 1  # engine threads per task: Dask's threads are the cores
        self.plugins = loaded_plugins()
        self.client = self.local = None
        self.futures = set()
        self._estimates = {}  # block future -> its estimates (the progress bar)
        self._results = {}  # finished future -> its result
        self.cells = []  # per cell run here: its index, the workers of its tasks, their time

    def __enter__(self):
        import distributed

        _quiet_logging()
        try:
            if self.address.startswith("local"):
                cores = os.cpu_count() or 1
                workers = int(self.address.partition(":")[2] or cores)
                self.threads = self.given_threads or max(1, cores // workers)
                self.local = local_cluster(workers)
                self.client = distributed.Client(self.local, set_as_default=False)
            else:
                self.client = distributed.Client(
                    self.address, timeout=CONNECT_TIMEOUT, set_as_default=False
                )
            notes = self._notes()
        except BaseException as err:  # Ctrl-C while starting too: close what did start
            self.__exit__(None, None, None)
            if isinstance(err, (OSError, TimeoutError)):
                why = f"cannot reach the Dask scheduler at {self.address}: {err}"
                raise SchedulerError(why) from None
            raise
        for line in notes:
            print(line, file=sys.stderr)
        return self

    def _notes(self):
        """Remarks on the cluster worth a line on stderr: no workers yet, other versions."""
        workers = self.client.run(describe_worker, on_error="ignore")
        if not workers:
            return [f"note: the scheduler at {self.address} has no workers yet; waiting for them"]
        from gradvar import io

        mine = io.versions()
        other = sorted(
            {f"{k} {w[k]}" for w in workers.values() for k in mine if w.get(k) != mine[k]}
        )
        if not other:
            return []
        return [
            f"note: workers run {', '.join(other)} (here: "
            + ", ".join(f"{k} {v}" for k, v in mine.items())
            + "); results may differ from a local run in the last digits"
        ]

    def __exit__(self, *exc):
        if self.client is not None:
            if self.futures:
                self.client.cancel(list(self.futures))
            self.futures.clear()
            self.client.close()
        if self.local is not None:
            self.local.close()
        self.client = self.local = None
        return False

    def meta(self):
        """meta.json's ``scheduler`` entry: address, workers (CPU and versions), and per cell
        the workers that ran its tasks and their seconds."""
        workers = self.client.run(describe_worker, on_error="ignore")  # a lost one: left out
        return {
            "address": self.address,
            "workers": len(workers),
            "worker_info": workers,
            "engine_threads": self.threads,
            "cells": sorted(self.cells, key=lambda c: c["cell"]),  # not completion order
        }

    def outcomes(self, plan, indices, progress=None):
        """Yield ``(index, Outcome)`` for the cells ``indices`` of ``plan`` as they finish:
        every task is submitted first; ``progress(k)`` counts the estimates of each block as
        it finishes, wherever it ran.  Ctrl-C (or an error) cancels what has not finished
        (:meth:`__exit__`).
        """
        import distributed

        from gradvar.studies.compare import cell_units

        pending = [(i, self._submit(plan, plan.cells[i], cell_units(plan, i))) for i in indices]
        position = {f: k for k, (_, (t, b)) in enumerate(pending) for f in [t, *_futures(b)]}
        position.pop(None, None)
        left = [len(_futures(b)) + (t is not None) for _, (t, b) in pending]
        for k in range(len(pending)):
            if left[k] == 0:
                yield self._gather(*pending[k])
        # results come back as tasks finish (no round trip per future); a task's error raises
        done = distributed.as_completed(list(position), loop=self.client.loop, with_results=True)
        for future, result in done:
            _reissue(result["warnings"] if isinstance(result, dict) else result[3])
            self._results[future] = result
            if progress is not None and future in self._estimates:
                progress(self._estimates[future])
            k = position[future]
            left[k] -= 1
            if left[k] == 0:
                yield self._gather(*pending[k])

    def map_ordered(self, fn, calls, progress=None):
        """Yield ``(index, fn(*args))`` on the workers for ``calls`` ({index: args}) as each
        finishes (``fn`` a module-level function of picklable arguments); ``progress(1)``
        per finished call; meta.json's ``cells`` records each index.  Ctrl-C (or an error)
        cancels what has not finished (:meth:`__exit__`)."""
        import distributed

        submit = self.client.submit
        index = {
            submit(run_call, fn, args, self.threads, self.plugins, pure=False): i
            for i, args in calls.items()
        }
        self.futures.update(index)
        done = distributed.as_completed(list(index), loop=self.client.loop, with_results=True)
        for future, (result, worker, seconds, caught) in done:
            _reissue(caught)
            self.futures.discard(future)
            i = index[future]
            self.cells.append({"cell": i, "workers": [worker], "seconds": round(seconds, 4)})
            if progress is not None:
                progress(1)
            yield i, result

    def _submit(self, plan, cell, units):
        """Submit a cell's truth task and the blocks of its units: (truth, {key: blocks})."""
        from gradvar import engine

        submit = self.client.submit
        if not units:
            return None, {}
        tasks = [
            replace(
                engine.Task.from_cell(cell, est, plan.samples, plan.seed, baseline),
                plugins=self.plugins,
            )
            for est, baseline in units
        ]
        relaxed = any(est.uses_tau for est, _ in units)
        truth = submit(run_truth, tasks, relaxed, pure=False)
        blocks = {}
        for (est, baseline), task in zip(units, tasks, strict=True):
            needs = truth if est.deterministic else None
            blocks[(est.name, baseline)] = futures = []
            for lo, hi, count in _blocks(plan.samples, len(cell.coords), int(cell.batch)):
                future = submit(
                    run_block, replace(task, chunks=(lo, hi)), self.threads, needs, pure=False
                )
                self._estimates[future] = count
                futures.append(future)
        self.futures.update([truth, *_futures(blocks)])
        return truth, blocks

    def _gather(self, index, submitted):
        """The Outcome of one cell whose tasks are all done; releases their futures."""
        from gradvar import engine

        truth_future, blocks = submitted
        outcome = Outcome()
        workers, seconds = set(), 0.0
        if truth_future is not None:
            truth = self._results.pop(truth_future)
            outcome.exact_grad, outcome.relaxed = truth["exact_grad"], truth["relaxed"]
            for key, futures in blocks.items():
                parts = [self._results.pop(f) for f in futures]
                workers.update(w for _, w, _, _ in parts)
                seconds += sum(s for _, _, s, _ in parts)
                _, exact_var, note = truth["units"][key]
                moments = [m for m, _, _, _ in parts]  # one part is simulate's own result
                mom = moments[0] if len(moments) == 1 else engine.merge(moments)
                outcome.units[key] = (mom, exact_var, note)
            for future in [truth_future, *_futures(blocks)]:
                self.futures.discard(future)
                self._estimates.pop(future, None)
        self.cells.append({"cell": index, "workers": sorted(workers), "seconds": round(seconds, 4)})
        return index, outcome


def _futures(blocks):
    return [f for futures in blocks.values() for f in futures]


def _blocks(n, p, batch):
    """(lo, hi, estimates) of the blocks of one unit: whole groups of chunks, about
    TASK_SAMPLES samples each (one block for a small unit)."""
    from gradvar import engine

    groups = engine.group_chunks(n, p, batch)
    count = int(min(len(groups), max(1, n * batch // TASK_SAMPLES)))
    size, _ = engine.chunking(n, p, batch)
    out = []
    for part in np.array_split(np.arange(len(groups)), count):
        lo, hi = groups[part[0]][0], groups[part[-1]][1]
        out.append((lo, hi, min(n, hi * size) - min(n, lo * size)))
    return out
