"""The `hnas` command line. Thin by design: parse, call one library function, print.

Errors a user can cause surface as :class:`~hnas_edge.errors.HnasError`; ``main`` prints their
one line and exits with code 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from hnas_edge import __version__
from hnas_edge.errors import HnasError

app = typer.Typer(
    name="hnas",
    help="Hardware-first multimodal neural architecture search for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"hnas-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hardware-first multimodal neural architecture search for edge devices."""


def main() -> None:
    try:
        app()
    except HnasError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished work is saved, rerun with --resume to go on")
        sys.exit(130)


if __name__ == "__main__":
    main()
