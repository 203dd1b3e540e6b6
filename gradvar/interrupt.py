"""Ctrl-C that is never lost and never half-handled (issue 9, item 5).

Python turns SIGINT into a KeyboardInterrupt raised in the main thread wherever it happens
to be.  Two places make that unreliable: a callback from C (llvmlite calls one while Numba
compiles a kernel) prints the KeyboardInterrupt as "Exception ignored" and carries on, so
the run never stops; and a second SIGINT that arrives while the first one's work is being
saved raises inside that code, so the process dies of the signal instead of exiting 130.

The command line (:func:`gradvar.cli.entry`) therefore calls :func:`install` once: the
first SIGINT is recorded before it raises KeyboardInterrupt, later ones are ignored (the
process is already stopping), and :func:`check`, called between units of work (chunks,
cells, while waiting for the kernel threads), raises it again if it was swallowed.  Once
the finished work is saved and the note printed, :func:`leave` ends the process with
status 130 without the interpreter's shutdown, during which Python puts back the default
SIGINT action.  In a process that did not install it (the Python API, a notebook)
``check`` never raises.
"""

import contextlib
import os
import signal
import sys
import threading

_STOP = threading.Event()


def _handler(signum, frame):
    if _STOP.is_set():  # already stopping: the first one is being handled
        return
    _STOP.set()
    raise KeyboardInterrupt


def install():
    """Handle SIGINT as above for the rest of the process (main thread only); a
    KeyboardInterrupt that a callback swallows is not printed either (it is raised again)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    previous = sys.unraisablehook

    def unraisable(info):
        if not issubclass(info.exc_type, KeyboardInterrupt):
            previous(info)

    sys.unraisablehook = unraisable


def leave(code):
    """End the process now with ``code`` after an interrupt: stdout and stderr flushed, but
    no interpreter shutdown, which would restore the default SIGINT action (a later signal
    would kill the process instead of the exit status) and wait on kernel threads."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    os._exit(code)


def requested():
    """True once SIGINT arrived in a process that called :func:`install`."""
    return _STOP.is_set()


def check():
    """Raise KeyboardInterrupt if SIGINT arrived (also when its first raise was swallowed)."""
    if _STOP.is_set():
        raise KeyboardInterrupt
