"""Where stage-2 candidates run. The search only calls ``Executor.map``; a distributed engine
(Ray, Dask, a job queue) plugs in by implementing it, without touching the search code.

Jobs are plain picklable values; the function they run reads its heavy context (supernets,
datasets, LUT) from the process it runs in, built once per worker by ``initializer``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Results in the order of ``items``, each yielded as soon as it (and those before) are
        done."""
        ...

    def close(self) -> None: ...


class InProcess:
    """Runs jobs one after the other in this process (``--workers 1``)."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return (fn(item) for item in items)

    def close(self) -> None:
        pass


class LocalPool:
    """A pool of ``workers`` processes on this machine, each with its own context.

    Processes are spawned (not forked: torch's thread pools do not survive a fork) and each
    gets an equal share of the cores for torch's intra-op threads.
    """

    def __init__(
        self, workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
    ) -> None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads, initializer, initargs),
        )

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        return self._pool.map(fn, items)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _init_worker(threads: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    import torch

    torch.set_num_threads(threads)
    initializer(*initargs)
