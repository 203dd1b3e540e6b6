"""``gradvar cache info`` and ``gradvar cache clear``: the folder of compiled kernels."""

import click

from gradvar.cli import common


@click.group("cache")
def cache_command():
    """Show or clear the cache of compiled kernels.

    One generated module per (family, objective, estimator) and Numba's compiled code for
    it live in $GRADVAR_CACHE_DIR/kernels (default ~/.cache/gradvar/kernels). Clearing it
    is always safe: the next run compiles what it needs again.

    \b
    Examples:
      gradvar cache info
      gradvar cache clear
    """


@cache_command.command("info")
def info_command():
    """Print the cache folder, its number of files and their size.

    \b
    Example:
      gradvar cache info
    """
    from gradvar.kernels import codegen

    with common.running_errors():
        folder, files, size = codegen.cache_info()
    click.echo(f"folder: {folder}")
    click.echo(f"files:  {files:,} ({size_text(size)})")


@cache_command.command("clear")
def clear_command():
    """Remove every file gradvar wrote into the cache folder.

    \b
    Example:
      gradvar cache clear
    """
    from gradvar.kernels import codegen

    with common.running_errors():
        files, size = codegen.cache_clear()
    click.echo(f"removed {files:,} files ({size_text(size)}) from {codegen.cache_dir()}")


def size_text(size):
    """Bytes as ``123 bytes``, ``4.5 kB``, ``6.7 MB`` or ``8.9 GB``."""
    if size < 1000:
        return f"{size} bytes"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"
