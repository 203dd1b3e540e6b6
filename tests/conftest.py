"""Fixtures of the gradvar test suite.

Helpers (cells, runs, the statistical checks, ``Z_TOL``) are in ``helpers.py``: import them
with ``from helpers import ...``, never from this file (pytest loads conftest.py as a plugin,
not as a module of the suite).
"""

import pytest
from click.testing import CliRunner

from gradvar.cli import main


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private kernel cache folder for tests that inspect caching."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GRADVAR_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``cli(*args)`` runs ``gradvar ARGS...`` (:data:`gradvar.cli.main`) through click's
    CliRunner in an empty working directory (``tmp_path``) and returns the click Result.

    Arguments are passed through ``str`` (paths and numbers are fine).  Exceptions are not
    caught (``catch_exceptions=False``): an unexpected one fails the test with its traceback
    instead of hiding behind ``exit_code == 1``.
    """
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
