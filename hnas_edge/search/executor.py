"""Where stage-2 candidates run. The search only calls ``Executor.map``; a distributed engine
(Ray, Dask, a job queue) plugs in by implementing it, without touching the search code.

Jobs are plain picklable values; the function they run reads its heavy context (supernets,
datasets, LUT) from the process it runs in, built once per worker by ``initializer``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from hnas_edge.cluster import connect, import_ray

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


@dataclass(frozen=True)
class RayOptions:
    """``--executor ray``: where and with what each stage-2 task runs."""

    address: str | None = None  # None: an existing local instance, else a new one
    task_cpus: float = 1.0
    task_gpus: float = 0.0
    max_retries: int = 3
    init_options: dict[str, Any] = field(default_factory=dict)  # e.g. num_cpus for a new one


class RayPool:
    """Jobs as Ray tasks on a Ray cluster (``address``) or a local Ray instance.

    Each task asks for ``options.task_cpus`` CPUs and ``task_gpus`` GPUs; a task whose worker
    dies is retried up to ``max_retries`` times by Ray. The worker context
    (``initializer(*initargs)``) travels once through Ray's object store and is built once per
    worker process. Closing cancels what is outstanding and shuts down a Ray instance this pool
    started.
    """

    def __init__(
        self, initializer: Callable[..., None], initargs: tuple[Any, ...], options: RayOptions
    ) -> None:
        import uuid

        self.ray = import_ray()
        self._started = connect(options.address, **options.init_options)
        threads = max(1, int(options.task_cpus))
        self._context = self.ray.put((uuid.uuid4().hex, threads, initializer, initargs))
        self._task = self.ray.remote(
            num_cpus=options.task_cpus,
            num_gpus=options.task_gpus,
            max_retries=options.max_retries,
        )(_in_ray_worker)
        self._outstanding: list[Any] = []

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        refs = [self._task.remote(self._context, fn, item) for item in items]
        self._outstanding = refs
        for ref in refs:
            yield self.ray.get(ref)
        self._outstanding = []

    def close(self) -> None:
        for ref in self._outstanding:
            with contextlib.suppress(Exception):  # finished or gone: nothing to cancel
                self.ray.cancel(ref, force=True)
        self._outstanding = []
        if self._started:
            self.ray.shutdown()


_RAY_CONTEXT: str | None = None


def _in_ray_worker(context: tuple[str, int, Callable[..., None], tuple[Any, ...]], fn, item):
    """Build this worker's context once per search (keyed by the context's id), then run."""
    global _RAY_CONTEXT
    key, threads, initializer, initargs = context
    if key != _RAY_CONTEXT:
        _init_worker(threads, initializer, initargs)
        _RAY_CONTEXT = key
    return fn(item)
