"""Figures drawn by a process of their own, forked when the command line starts.

Importing matplotlib and drawing a first figure take about 0.5 s, as long as importing
numpy, pandas and numba together.  A command that will draw a figure (``compare``,
``sweep-tau``, ``run``, ...) forks a drawing process at launch (:func:`start`, called by the
``gradvar`` console script, ``gradvar.__main__``, before the command line is imported and
before any thread exists): it imports matplotlib while the command imports the rest and
runs, then draws when it is asked (:func:`draw_command`).  The figures are the same files,
drawn by the same code from the same CSV files into the same folder, and the command waits
for them where it drew them itself before: a small ``gradvar compare`` finishes about 0.1 s
sooner (the import overlaps; the drawing does not).

Anything else is drawn by the calling process, exactly as before: a platform other than
Linux (fork is absent on Windows and unsafe on macOS), another thread already running (a
test, a notebook), the drawing process gone, or a figure that failed in it (drawn again
here, so that the error is raised as it always was).  The
drawing process ignores Ctrl-C, writes nothing to the terminal (warnings are sent back and
issued here) and ends when the command's end of the pipe closes.
"""

import gc
import os
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
    process = context.Process(target=_serve, args=(theirs,), name="gradvar-drawer", daemon=True)
    try:
        process.start()
    except OSError:  # no process to spare: draw here
        return
    theirs.close()
    _DRAWER.append(ours)


def draw_command(command, folder):
    """:func:`gradvar.plots.draw_command`, in the drawing process when there is one."""
    from gradvar import plots

    if _DRAWER:
        conn = _DRAWER[0]
        try:
            conn.send((command, str(folder)))
            status, names, caught = conn.recv()
        except (OSError, EOFError):  # the process is gone: draw here from now on
            _DRAWER.clear()
        else:
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
            if status == "ok":
                return names
    return plots.draw_command(command, folder)


def _serve(conn):
    """The drawing process: import matplotlib, then draw each folder asked for."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command handles Ctrl-C
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # hold no pipe of the terminal's open (a caller reading the
    os.dup2(devnull, 2)  # command's output would wait for this process to end)
    try:
        from pathlib import Path

        import matplotlib.figure  # noqa: F401  (the import this process is for)
        from matplotlib.backends import backend_agg  # noqa: F401

        from gradvar import plots

        gc.freeze()  # what is loaded stays: collections scan only what each figure makes
        while True:
            try:
                command, folder = conn.recv()
            except (EOFError, OSError):
                break
            with warnings.catch_warnings(record=True) as caught:
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
