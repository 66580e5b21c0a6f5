"""Phrases more than one display shares."""

from __future__ import annotations

from hnas_edge.data.metrics import LABELS


def metric_label(metric: str) -> str:
    """How a table names a task metric ("accuracy", "weighted F1")."""
    return LABELS[metric]


def relative(error: float | None) -> str:
    """A relative error with its sign ("+3.1%"), or "-" where there is none."""
    return "-" if error is None else f"{error:+.1%}"
