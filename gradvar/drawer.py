"""Figures drawn by a process of their own, forked when the command line starts.

Importing matplotlib and drawing a first figure take about 0.5 s, as long as importing
numpy, pandas and numba together.  A command that will draw a figure (``compare``,
``sweep-tau``, ``run``, ...) forks a drawing process at launch (:func:`start`, called by the
``gradvar`` console script, ``gradvar.__main__``, before the command line is imported and
before any thread exists): it imports matplotlib and pandas while the command imports the
rest and runs, then draws when it is asked (:func:`draw_command`).  The figures are the same
files, drawn by the same code from the same CSV files into the same folder, and the command
waits for them where it drew them itself before: a small ``gradvar compare`` finishes about
0.2 s sooner (the imports overlap; the drawing does not).

Anything else is drawn by the calling process, exactly as before: a platform other than
Linux (fork is absent on Windows and unsafe on macOS), another thread already running (a
test, a notebook), the drawing process gone, a figure that failed in it (drawn again here,
so that the error is raised as it always was), or a command that registered what the
drawing process does not know (a plugin: the titles name its entries).
The drawing process ignores Ctrl-C, writes nothing to the terminal (warnings are sent back
and issued here) and ends when the command's end of the pipe closes; a Ctrl-C while it
draws stops it too (SIGTERM) before the command leaves.
"""

import gc
import os
import pickle
import sys
import threading
import warnings

# The commands whose runs draw figures (``--no-plot`` aside)
COMMANDS = ("compare", "pick-one", "sweep-tau", "gumbel-max", "train", "run")

_DRAWER = []  # the connection to the drawing process, once started and while it works


def wanted(args):
    """Whether the command line ``args`` (without the program name) will draw a figure."""
    return bool(args) and args[0] in COMMANDS and not {"--no-plot", "--help", "-h"} & set(args)


def start(args):
    """Fork the drawing process if ``args`` will draw and this process may fork safely."""
    if _DRAWER or not wanted(args) or threading.active_count() > 1:
        return
    if not sys.platform.startswith("linux"):  # fork is unsafe on macOS, absent on Windows
        return
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    # it is given our end too, to close it: else its end never reads EOF when we are gone
    process = context.Process(
        target=_serve, args=(theirs, ours), name="gradvar-drawer", daemon=True
    )
    import signal

    # SIGINT blocked across the fork: the child ignores it before it can arrive (a Ctrl-C
    # then would print multiprocessing's traceback); here it is delivered after the fork
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    except OSError:  # no process to spare: draw here
        return
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    theirs.close()
    _DRAWER.append((ours, process))


def draw_command(command, folder):
    """:func:`gradvar.plots.draw_command`, in the drawing process when there is one."""
    from gradvar import plots

    if _DRAWER:
        conn, process = _DRAWER[0]
        try:
            conn.send((command, str(folder), registered(), warnings.filters))
            status, names, caught = conn.recv()
        except (OSError, EOFError):  # the process is gone: draw here from now on
            _DRAWER.clear()
        except (pickle.PicklingError, TypeError, AttributeError):  # a filter it cannot have
            pass
        except BaseException:  # Ctrl-C while it draws: it stops now too, not after we exit
            _DRAWER.clear()
            _stop(process)
            raise
        else:
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
            if status == "ok":
                return names
    return plots.draw_command(command, folder)


def registered():
    """What the figures read of gradvar's registries (names, summaries), once all of
    :mod:`gradvar.model` is loaded: a plugin the command registered is missing in the
    drawing process, which then leaves the figure to it.  Expression objectives are left
    out: a figure titles one the same whether it is registered or not."""
    from gradvar import model
    from gradvar.model import expressions, registry

    objectives = {k: v for k, v in registry.OBJECTIVES.items() if not expressions.built(*k)}
    tables = (registry.FAMILIES, objectives, registry.ESTIMATORS, registry.BASELINES)
    tables += (model.OPTIONS,)
    return [
        sorted((repr(key), repr(getattr(value, "summary", None))) for key, value in t.items())
        for t in tables
    ]


def _stop(process):
    """End the drawing process (SIGTERM: it removes its temporary file), killed if it lingers."""
    import contextlib

    with contextlib.suppress(Exception):
        process.terminate()
        process.join(1)
        if process.is_alive():
            process.kill()
            process.join(1)


def _terminated(signum, frame):
    raise SystemExit(0)


def _serve(conn, command_end):
    """The drawing process: import matplotlib, then draw each folder asked for."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command handles Ctrl-C
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked across the fork
    command_end.close()  # our copy of the command's end: else ours never reads EOF
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # hold no pipe of the terminal's open (a caller reading the
    os.dup2(devnull, 2)  # command's output would wait for this process to end)
    try:
        from pathlib import Path

        import matplotlib.figure  # noqa: F401  (the imports this process is for)
        import pandas  # noqa: F401  (the figures read the CSV files with it)
        from matplotlib.backends import backend_agg  # noqa: F401

        from gradvar import plots

        ours = registered()
        gc.freeze()  # what is loaded stays: collections scan only what each figure makes
        # SIGTERM kills at once until now (a command that exits early does not wait on the
        # imports); from now on it stops a figure cleanly (its temporary file removed)
        signal.signal(signal.SIGTERM, _terminated)
        while True:
            try:
                command, folder, theirs_registered, filters = conn.recv()
            except (EOFError, OSError):
                break
            if theirs_registered != ours:  # entries we do not have: the command draws it
                conn.send(("elsewhere", None, []))
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.resetwarnings()  # the command's filters as it asks (its "always")
                warnings.filters.extend(filters)
                try:
                    reply = ["ok", plots.draw_command(command, Path(folder))]
                except Exception:  # drawn again by the command, which raises it itself
                    reply = ["failed", None]
            reply.append([(str(w.message), w.category) for w in caught])
            try:
                conn.send(tuple(reply))
            except Exception:  # an unpicklable warning category: leave them out
                conn.send((reply[0], reply[1], []))
    except BaseException:  # noqa: S110 (the command draws instead; nothing to print)
        pass
    finally:
        os._exit(0)  # no interpreter shutdown: nothing of the command's state is run twice
