"""The ``gradvar`` console script and ``python -m gradvar``."""

import os
import sys

from gradvar import drawer


def mend_streams():
    """Give a standard stream closed at launch (``2>&-``, ``>&-``, ``<&-``) to /dev/null.

    Python starts with ``sys.stderr = None`` when descriptor 2 is closed: every message
    (an error, the progress bar, a warning) then failed with an AttributeError and the
    command exited 1 whatever it had computed; and the first file the command opened took
    the free descriptor, where anything written "to stderr" would land in it.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:  # closed: hold the descriptor with /dev/null
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        stream = open(fd, mode, closefd=False, errors="backslashreplace")  # noqa: SIM115 (for the process)
        setattr(sys, name, stream)


def main():
    """Fork the drawing process first (:mod:`gradvar.drawer`: little is imported yet and no
    thread runs), then run the command line."""
    mend_streams()
    drawer.start(sys.argv[1:])
    from gradvar.cli import entry

    entry(prog_name="gradvar")


if __name__ == "__main__":
    main()
