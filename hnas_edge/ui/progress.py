"""The one progress bar of the CLI, and the callbacks a domain function drives it through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class DeferredProgress(Progress):
    """A progress bar drawn from its first update on, not from ``with``: a command refused once
    inside (a LUT another process is writing) prints its one error line and no empty bar."""

    def __enter__(self) -> DeferredProgress:
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        if not self.live.is_started:
            self.start()
        super().update(*args, **kwargs)

    def stop(self) -> None:
        if self.live.is_started:  # never drawn: not even the blank line a stop prints
            super().stop()


def progress_bar(
    console: Console, detail_field: str = "detail", deferred: bool = False
) -> Progress:
    """The one progress bar of the CLI: what, bar, done/total, elapsed, ETA, a detail field;
    ``deferred``: drawn from its first update on."""
    return (DeferredProgress if deferred else Progress)(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn(f"{{task.fields[{detail_field}]}}"),
        console=console,
    )


class Line:
    """One line of a bar, driven as a callback: ``line(done, total, detail)``."""

    def __init__(self, bar: Progress, task: TaskID, field: str) -> None:
        self.bar, self.task, self.field = bar, task, field

    def __call__(self, done: float, total: float | None = None, detail: str | None = None) -> None:
        """``done`` of ``total`` (None: unchanged), ``detail`` in the last column (None: as it
        was); shows a line added hidden."""
        fields = {} if detail is None else {self.field: detail}
        self.bar.update(self.task, completed=done, total=total, visible=True, **fields)

    def finish(self, detail: str) -> None:
        """Complete: done = total, with a last ``detail``."""
        total = next(task.total for task in self.bar.tasks if task.id == self.task)
        self(total or 0, detail=detail)


class Bars:
    """An open progress bar, to which lines are added as the work reveals them."""

    def __init__(self, bar: Progress, field: str) -> None:
        self.bar, self.field = bar, field
        self.console = bar.console

    def add(self, description: str, total: int | None = None, visible: bool = True) -> Line:
        task = self.bar.add_task(description, total=total, visible=visible, **{self.field: ""})
        return Line(self.bar, task, self.field)


@contextmanager
def bars(console: Console, field: str = "detail", deferred: bool = False) -> Iterator[Bars]:
    """A progress bar open for the ``with`` block (see :func:`progress_bar`)."""
    with progress_bar(console, field, deferred) as bar:
        yield Bars(bar, field)


@contextmanager
def progress_line(
    console: Console,
    description: str,
    total: int | None = None,
    field: str = "detail",
    deferred: bool = False,
) -> Iterator[Line]:
    """A progress bar of one line, handed out as the callback that drives it."""
    with bars(console, field, deferred) as open_bars:
        yield open_bars.add(description, total)
