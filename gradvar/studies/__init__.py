"""One module per command: validate an experiment, run it, return tables, write the folder.

A command named X is ``gradvar/studies/X.py`` (its ``STUDY``, a
:class:`gradvar.studies.base.Study`, and its Python API function), ``gradvar/cli/X.py``
(Click options and the printed table) and ``gradvar/plots/X.py`` (its figures, drawn
from the folder's CSV files), with canonical experiments in ``experiments/``.
"""

import importlib

# command -> module of gradvar.studies (imported on use: the CLI's help stays fast)
STUDIES = {
    "compare": "compare",
    "sweep-tau": "sweep_tau",
    "gumbel-max": "gumbel_max",
    "pick-one": "pick_one",
    "train": "train",
}


def study(command):
    """The :class:`~gradvar.studies.base.Study` of a command."""
    return importlib.import_module(f"gradvar.studies.{STUDIES[command]}").STUDY
