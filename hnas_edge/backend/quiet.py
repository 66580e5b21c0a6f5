"""The quiet-machine gate: host timings kept only while the machine runs at its usual speed.

Shared and virtual machines have slow spells. On the 2-core cloud machines this project is
built on, every call runs 1.3-1.6x slower for a few milliseconds to seconds at a time, 9-30% of
a minute, with nothing else running in the guest (docs/luts.md). A part or a network timed in
such a spell is priced that much too high, and one profile disagrees with the next. The spells
slow all the work we timed (onnxruntime parts 1.5-1.6x, a numpy product 1.3x), so a fixed, tiny
probe sees them: a 32x32 matrix product, timed between the chunks of the timing loop
(:func:`hnas_edge.backend.timing.time_callable`). A chunk beside a probe that ran more than
``tolerance`` slower than the fastest recent probe is dropped.

The fastest recent probe is the fastest of the last :data:`MEMORY` probes (about ten seconds of
timing), so a machine that slows for good (a thermal limit, a new power mode) becomes the new
usual speed instead of a spell waited out forever; the timing loop also stops waiting after
``quiet_wait_s`` per attempt.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache

import numpy as np

#: Probes remembered for the usual speed (each follows a chunk of about 20 ms).
MEMORY = 512
PROBE_CALLS = 64
PROBE_SIZE = 32  # 4 KiB a matrix: the probe stays in the L1 cache, on one thread

Probe = Callable[[], float]  # the duration of one probe, any fixed unit


def matmul_probe(calls: int = PROBE_CALLS, size: int = PROBE_SIZE) -> Probe:
    """The median time of ``calls`` products of two fixed ``size`` x ``size`` matrices."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    durations = np.empty(calls)

    def probe() -> float:
        for i in range(calls):
            start = time.perf_counter_ns()
            np.matmul(a, a, out=out)
            durations[i] = time.perf_counter_ns() - start
        return float(np.median(durations))

    return probe


class MachineSpeed:
    """Probes of the machine's speed and the fastest of the recent ones."""

    def __init__(self, probe: Probe, memory: int = MEMORY) -> None:
        self.probe = probe
        self.recent: deque[float] = deque(maxlen=memory)

    def quiet(self, tolerance: float) -> bool:
        """Probe once: is the machine within ``tolerance`` of its fastest recent probe?"""
        now = self.probe()
        self.recent.append(now)
        return now <= (1 + tolerance) * min(self.recent)


@lru_cache(maxsize=1)
def machine_speed() -> MachineSpeed:
    """The one record of this machine's speed a process keeps: every timing reads it, so the
    usual speed is learnt once, across parts and networks."""
    speed = MachineSpeed(matmul_probe())
    for _ in range(20):  # a first idea of the usual speed before anything is judged by it
        speed.quiet(0.0)
    return speed


Gate = Callable[[], bool]  # True: the machine runs at its usual speed now


def quiet_gate(tolerance: float) -> Gate | None:
    """The gate a timing loop consults, None where ``tolerance`` is 0 (the gate is off)."""
    if tolerance <= 0:
        return None
    speed = machine_speed()
    return lambda: speed.quiet(tolerance)
