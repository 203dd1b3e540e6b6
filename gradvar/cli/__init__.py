"""The command line: a thin Click layer over the library.  No numerics here.

Each command lives in ``gradvar/commands/<name>.py`` and is registered below.  Command
modules import only click and the registries at import time, so ``gradvar --help`` stays
fast; numba and matplotlib load inside the commands that need them.
"""

import gc

import click

from gradvar import __version__, interrupt
from gradvar.cli import cache, compare, gumbel_max, pick_one, plot, run, sweep_tau, train
from gradvar.cli import list as listing

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="gradvar")
def main():
    """gradvar: measure Monte Carlo gradient estimators honestly.

    Runs estimators of grad E_{z~p_theta}[f(z)] on toy objectives with known ground
    truth and reports mean, bias, variance, MSE and cost with confidence intervals, as
    CSV tables and plots.

    \b
    Examples:
      gradvar list
      gradvar compare --estimator sf,sf-baseline,reparam --mu -4:4:17
    """


main.add_command(listing.list_command)
main.add_command(compare.compare_command)
main.add_command(plot.plot_command)
main.add_command(pick_one.pick_one_command)
main.add_command(train.train_command)
main.add_command(sweep_tau.sweep_tau_command)
main.add_command(gumbel_max.gumbel_max_command)
main.add_command(run.run_command)
main.add_command(cache.cache_command)


def entry(prog_name="gradvar"):
    """The console script: ``main``, then a quick exit.

    ``gc.freeze()`` before the interpreter shuts down spares the final garbage collection
    over everything pandas, numba and matplotlib loaded (about 0.15 s per run); the process
    is ending, so there is nothing to reclaim.  Tests call ``main`` and are unaffected.
    SIGINT is handled by :mod:`gradvar.interrupt` (never lost, handled once); after a
    Ctrl-C the process leaves at once with status 130, wherever the signal arrived.
    """
    interrupt.install()
    try:
        main(prog_name=prog_name)
    except SystemExit as stop:
        if interrupt.requested():  # the work is saved and said: leave now (exit 1 is "Aborted!")
            interrupt.leave(130 if stop.code in (1, 130) else stop.code)
        raise
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    entry()
