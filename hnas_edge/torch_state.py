"""torch's process-wide state, changed for one block only: the random stream and the thread count.

A library function that needs determinism runs its draws inside :func:`seeded`; one that takes a
thread count applies it with :func:`torch_threads`. Either gives the caller's state back on exit,
so calling a library function never shifts the caller's seeded stream or its threads. Only a
process entry point sets process-wide state for good: the CLI (``--threads``) and a worker
process's initialiser (:mod:`hnas_edge.search.executor`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from hnas_edge.errors import HnasError


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The block draws from torch's global random stream seeded with ``seed``; the caller's
    stream is restored after it.

    Forked and seeded: the CPU stream and, where CUDA is initialised, every CUDA device's. A
    stream CUDA creates inside the block is neither seeded nor restored (seeding it lazily would
    leak past the block), so initialise CUDA first where the block draws on a GPU:
    :func:`hnas_edge.accelerator.resolve` does.
    """
    cuda = torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed_all(seed)
        yield


def check_threads(threads: int) -> int:
    """``threads`` if it is a usable intra-op thread count, else a one-line error."""
    if threads < 1:
        raise HnasError(f"--threads {threads}: give at least 1")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count is ``threads`` for the block, then what it was (None:
    unchanged)."""
    if threads is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(check_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)
