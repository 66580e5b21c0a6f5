"""Where stage-2 candidates run. The search only calls ``Executor.run``; a distributed engine
(Ray, Dask, a job queue) plugs in by implementing it, without touching the search code.

Jobs are plain picklable values. The function they run gets, besides the job, the heavy
context of the process it runs in (supernets, datasets, LUT), which the executor owns:
:class:`InProcess` is given the driver's; a worker process (:class:`LocalPool`, :class:`RayPool`)
builds its own once with ``initializer(*initargs)``. Results come back as jobs finish, in any
order: each carries its job's id, and the search checkpoints it at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hnas_edge.cluster import connect, import_ray

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

# A job function: ``fn(context, item)``, or ``fn(context, item, shared)`` on Ray with shares.
Job = Callable[..., R]

# What a job shares with others, computed once by the driver: name -> how to compute it.
Shares = Callable[[Any], Mapping[str, Callable[[], Any]]]


class Executor(Protocol):
    def run(self, fn: Job[R], items: Sequence[T]) -> Iterator[R]:
        """``fn(context, item)`` for every item, with the context of the process it runs in;
        each result yielded as soon as it is done."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ran the jobs, recorded with the results."""
        ...

    def close(self) -> None:
        """Cancel what is outstanding and release the workers."""
        ...


class InProcess(Generic[C]):
    """Runs jobs one after the other in this process (``--workers 1``), with ``context``."""

    def __init__(self, context: C) -> None:
        self.context = context

    def run(self, fn: Job[R], items: Sequence[T]) -> Iterator[R]:
        return (fn(self.context, item) for item in items)

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process"}

    def close(self) -> None:
        pass


class LocalPool:
    """A pool of ``workers`` processes on this machine, each with its own context.

    Processes are spawned (not forked: torch's thread pools do not survive a fork) and each
    gets an equal share of the cores for torch's intra-op threads; each builds its context with
    ``initializer(*initargs)`` when it starts.
    """

    def __init__(
        self, workers: int, initializer: Callable[..., Any], initargs: tuple[Any, ...]
    ) -> None:
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(None, self.threads, initializer, initargs),
        )

    def run(self, fn: Job[R], items: Sequence[T]) -> Iterator[R]:
        pending = {self._pool.submit(_in_worker, fn, item) for item in items}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "workers": self.workers, "threads": self.threads}

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class _WorkerProcess:
    """The context of a worker process an executor started (a :class:`LocalPool`'s spawned
    process, a Ray worker): one per process, built by the pool's initializer, read by every job
    the process runs. Never set in the driver, whose :class:`InProcess` holds its own context."""

    key: str | None = None  # which search's context it is (a Ray worker outlives a search)
    context: Any = None


def _start_worker(
    key: str | None, threads: int, initializer: Callable[..., Any], initargs: tuple[Any, ...]
) -> None:
    import torch

    torch.set_num_threads(threads)
    _WorkerProcess.context = initializer(*initargs)
    _WorkerProcess.key = key


def _in_worker(fn: Job[R], item: Any, *shared: Any) -> R:
    return fn(_WorkerProcess.context, item, *shared)


@dataclass(frozen=True)
class RayOptions:
    """``--executor ray``: where and with what each stage-2 task runs."""

    address: str = "local"  # a new local instance; "auto": the one started on this machine
    task_cpus: float = 1.0
    task_gpus: float = 0.0
    max_retries: int = 3
    shared_objects: int = 16  # shared values kept in the object store for reuse (LRU)
    init_options: dict[str, Any] = field(default_factory=dict)  # e.g. num_cpus for a new one


class RayPool:
    """Jobs as Ray tasks on a Ray cluster (``address``) or a local Ray instance.

    Each task asks for ``options.task_cpus`` CPUs and ``task_gpus`` GPUs; a task whose worker
    dies is retried up to ``max_retries`` times by Ray. The worker context
    (``initializer(*initargs)``) travels once through Ray's object store and is built once per
    worker process. What ``shares(item)`` names (a candidate's backbone features) is computed
    here once, put in the object store once, and handed to every task that names it (the job
    runs as ``fn(context, item, shared)``); the last ``shared_objects`` of them stay there for
    later jobs. Closing cancels what is outstanding and shuts down a Ray instance this pool
    started.
    """

    def __init__(
        self,
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...],
        options: RayOptions,
        shares: Shares | None = None,
    ) -> None:
        self.ray = import_ray()
        self.options = options
        self._started = connect(options.address, **options.init_options)
        threads = max(1, int(options.task_cpus))
        self._context = self.ray.put((uuid.uuid4().hex, threads, initializer, initargs))
        self._task = self.ray.remote(
            num_cpus=options.task_cpus,
            num_gpus=options.task_gpus,
            max_retries=options.max_retries,
        )(_in_ray_worker)
        self._shares = shares
        self._objects: OrderedDict[str, Any] = OrderedDict()
        self._outstanding: list[Any] = []
        self.stats = {"tasks": 0, "shared_objects_put": 0, "shared_bytes_put": 0}

    def run(self, fn: Job[R], items: Sequence[T]) -> Iterator[R]:
        # submitted one by one: the first task runs while the next one's features are computed
        for item in items:
            self._outstanding.append(self._submit(fn, item))
        try:
            while self._outstanding:
                (done,), self._outstanding = self.ray.wait(self._outstanding, num_returns=1)
                yield self.ray.get(done)
        finally:
            self.close_outstanding()

    def _submit(self, fn: Job[R], item: T) -> Any:
        named = dict(self._shares(item)) if self._shares else {}
        refs = [self._object(name, compute) for name, compute in named.items()]
        self.stats["tasks"] += 1
        return self._task.remote(self._context, fn, item, tuple(named), *refs)

    def _object(self, name: str, compute: Callable[[], Any]) -> Any:
        """The object-store reference of a shared value, put there at most once while kept."""
        if name in self._objects:
            self._objects.move_to_end(name)
            return self._objects[name]
        value = compute()
        self._objects[name] = self.ray.put(value)
        self.stats["shared_objects_put"] += 1
        self.stats["shared_bytes_put"] += payload_bytes(value)
        while len(self._objects) > max(1, self.options.shared_objects):
            self._objects.popitem(last=False)  # in-flight tasks keep their own arguments alive
        return self._objects[name]

    def describe(self) -> dict[str, Any]:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return {
            "kind": "ray",
            "address": self.options.address,
            "nodes": len(nodes),
            "cluster_cpus": self.ray.cluster_resources().get("CPU", 0),
            "task_cpus": self.options.task_cpus,
            "task_gpus": self.options.task_gpus,
            "max_retries": self.options.max_retries,
            **self.stats,
        }

    def close_outstanding(self) -> None:
        for ref in self._outstanding:
            with contextlib.suppress(Exception):  # finished or gone: nothing to cancel
                self.ray.cancel(ref, force=True)
        self._outstanding = []

    def close(self) -> None:
        self.close_outstanding()
        self._objects.clear()
        if self._started:
            self.ray.shutdown()


def payload_bytes(value: Any) -> int:
    """Bytes of the tensors and arrays in ``value`` (modules: their parameters and buffers;
    mappings, sequences and dataclasses: what they hold)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, torch.nn.Module):
        return sum(payload_bytes(t) for t in value.state_dict().values())
    if isinstance(value, Mapping):
        return sum(payload_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(payload_bytes(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(payload_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def _in_ray_worker(
    context: tuple[str, int, Callable[..., Any], tuple[Any, ...]],
    fn: Job[R],
    item: Any,
    names: tuple[str, ...],
    *shared: Any,
) -> R:
    """Build this worker's context once per search (keyed by the context's id), then run.
    Ray resolves ``shared`` (top-level references) from the object store before the call."""
    key = context[0]
    if key != _WorkerProcess.key:
        _start_worker(*context)
    if names:
        return _in_worker(fn, item, dict(zip(names, shared, strict=True)))
    return _in_worker(fn, item)
