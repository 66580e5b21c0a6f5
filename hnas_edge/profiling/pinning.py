"""Pinning the measuring thread to one core, where the OS allows it.

A thread the scheduler moves between cores mid-measurement pays for cold caches and lands
beside whatever else runs there; pinned, every part and every network is timed on the same core.
The core chosen is the least busy of those this process may use, over a short window (the other
jobs of a shared machine are then more likely elsewhere). Linux applies ``sched_setaffinity(0,
…)`` to the calling thread, and threads it starts later inherit it; the previous affinity is
restored afterwards. Where ``os.sched_setaffinity`` does not exist (macOS, Windows) or refuses,
nothing is pinned and None is recorded. ``pin_core = false`` in the device profile turns it off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from hnas_edge.profiling.state import _read


def _per_cpu_busy() -> dict[int, int]:
    """Busy jiffies of each CPU since boot (/proc/stat), empty where unreadable."""
    busy: dict[int, int] = {}
    for line in (_read("/proc/stat") or "").splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        try:
            values = [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if len(values) >= 5:
            busy[int(name[3:])] = sum(values) - values[3] - values[4]
    return busy


def quietest_core(allowed: set[int], window_s: float = 0.3) -> int:
    """The allowed core that was least busy over ``window_s`` (ties: the highest number; the
    highest number where /proc/stat cannot be read)."""
    start = _per_cpu_busy()
    time.sleep(window_s if start else 0)
    end = _per_cpu_busy()
    usage = {c: end[c] - start[c] for c in allowed if c in start and c in end}
    if not usage:
        return max(allowed)
    return min(sorted(usage, reverse=True), key=lambda c: usage[c])


@contextmanager
def pinned(enabled: bool = True) -> Iterator[int | None]:
    """Run the block with the calling thread on one core; yields the core, or None where
    nothing was pinned (disabled, unsupported, refused)."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = quietest_core(set(before))
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield None
        return
    try:
        yield core
    finally:
        with suppress(OSError):
            os.sched_setaffinity(0, before)
