"""The display apart from the domain: bars and printers live in `hnas_edge.ui`, which only the
command line and the quickstart use; the domain reports through callbacks."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from rich.console import Console

import hnas_edge
from hnas_edge.ui.progress import bars, progress_line

PACKAGE = Path(hnas_edge.__file__).parent
DOMAIN = ("profiling", "train", "search", "space", "export", "deploy", "data")


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", DOMAIN)
def test_no_domain_module_imports_rich_or_the_ui(package):
    for path in (PACKAGE / package).rglob("*.py"):
        display = {n for n in imported(path) if n.split(".")[0] == "rich" or "hnas_edge.ui" in n}
        assert not display, f"{path.relative_to(PACKAGE)} imports {sorted(display)}"


def test_only_the_cli_and_the_quickstart_use_the_ui():
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "ui" and any(n.startswith("hnas_edge.ui") for n in imported(path))
    }
    assert users == {"cli.py", "quickstart.py"}


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120), out


def test_a_deferred_bar_never_driven_draws_nothing():
    """A command refused inside its bar prints its error line alone."""
    screen, out = console()
    with pytest.raises(ValueError), progress_line(screen, "measuring", 8, deferred=True):
        raise ValueError("refused")
    assert out.getvalue() == ""


def test_a_line_is_driven_as_a_callback_and_finishes_at_its_total():
    screen, out = console()
    with bars(screen, "part") as open_bars:
        line = open_bars.add("profiling", None)
        line(1, 3, "first")
        line(2)
        line.finish("done")
    (task,) = open_bars.bar.tasks
    assert (task.completed, task.total, task.fields["part"]) == (3, 3, "done")
    assert "3/3" in out.getvalue() and "done" in out.getvalue()
