"""``gradvar cache info`` / ``gradvar cache clear``: the on-disk kernel cache
(:func:`gradvar.kernels.codegen.cache_dir`; set GRADVAR_CACHE_DIR to move it)."""

import shutil
from pathlib import Path

import click


def _folder():
    from gradvar.kernels import codegen

    return Path(codegen.cache_dir())


@click.group("cache")
def cache_command():
    """The compiled-kernel cache: where it is, how big, and how to empty it.

    \b
    Examples:
      gradvar cache info
      gradvar cache clear
    """


@cache_command.command("info")
def info_command():
    """Print the cache folder, its generated modules and its size."""
    folder = _folder()
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    modules = [p for p in files if p.suffix == ".py"]
    size = sum(p.stat().st_size for p in files)
    click.echo(f"folder:  {folder}{'' if folder.is_dir() else ' (not created yet)'}")
    click.echo(f"kernels: {len(modules)} generated module(s), {len(files)} file(s)")
    click.echo(f"size:    {size / 1e6:.1f} MB")


@cache_command.command("clear")
def clear_command():
    """Remove every cached kernel (they are rebuilt when next needed)."""
    folder = _folder()
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"{folder} is not a folder; remove it yourself")
    count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    try:
        shutil.rmtree(folder, ignore_errors=False) if folder.is_dir() else None
    except OSError as err:
        raise click.ClickException(f"cannot clear {folder}: {err}") from None
    click.echo(f"Removed {count} file(s) from {folder}")
