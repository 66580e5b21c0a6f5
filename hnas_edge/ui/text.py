"""Phrases more than one display shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hnas_edge.data.metrics import LABELS

if TYPE_CHECKING:
    from rich.console import Console


def metric_label(metric: str) -> str:
    """How a table names a task metric ("accuracy", "weighted F1")."""
    return LABELS[metric]


def relative(error: float | None) -> str:
    """A relative error with its sign ("+3.1%"), or "-" where there is none."""
    return "-" if error is None else f"{error:+.1%}"


def warn(console: Console, text: str) -> None:
    """One warning line: ``warning:`` (yellow) and the text as it is."""
    console.print(f"[yellow]warning:[/] {text}", highlight=False)
