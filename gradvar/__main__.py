"""The ``gradvar`` console script and ``python -m gradvar``."""

import sys

from gradvar import drawer


def main():
    """Fork the drawing process first (:mod:`gradvar.drawer`: little is imported yet and no
    thread runs), then run the command line."""
    drawer.start(sys.argv[1:])
    from gradvar.cli import entry

    entry(prog_name="gradvar")


if __name__ == "__main__":
    main()
