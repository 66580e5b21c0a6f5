"""Timing statistics and the timing loop every runtime shares.

The loop is pure (the clock and the call are injected), so its rules are tested exactly: warm up
for ``warmup_s``; time at least ``min_iters`` calls and at least ``min_time_s``; if the spread
(coefficient of variation) is above ``max_cv``, measure again, up to ``retries`` more times, and
keep the steadiest attempt (spread judged by :attr:`LatencyStats.robust_cv`).

Calls are timed in chunks of about :data:`CHUNK_S`; with the quiet-machine gate on
(``quiet_tolerance`` > 0, :mod:`hnas_edge.backend.quiet`), a chunk timed while the machine ran
slow is dropped and timed again, for at most ``quiet_wait_s`` per attempt. Runtimes that time
with their own loop (CUDA events) are not gated: the gate watches the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hnas_edge.backend.quiet import Gate, quiet_gate
from hnas_edge.checks import Fields
from hnas_edge.errors import ConfigError

Clock = Callable[[], int]  # nanoseconds, monotonic

#: The calls between two probes of the quiet-machine gate last about this long.
CHUNK_S = 0.02


@dataclass(frozen=True)
class TimingSettings:
    warmup_s: float = 0.2
    min_iters: int = 300
    min_time_s: float = 0.5
    max_cv: float = 0.10
    retries: int = 2
    #: drop chunks timed while the machine ran this much slower than usual (0: keep all)
    quiet_tolerance: float = 0.15
    #: per attempt, at most this much time dropped; then every chunk is kept
    quiet_wait_s: float = 5.0

    def __post_init__(self) -> None:
        check_timing(asdict(self), Fields("timing settings", error=ConfigError))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def filled(cls, timing: Mapping[str, Any]) -> dict[str, Any]:
        """``timing`` (a TOML's or a LUT's) with the fields it leaves out at their defaults."""
        return {**cls().to_dict(), **timing}


#: Upper bounds that keep a typo from hanging a profile (an hour of timing per part, ...).
MAX_SECONDS = 3600.0
MAX_ITERS = 10_000_000
MAX_RETRIES = 100


def check_timing(timing: Mapping[str, Any], f: Fields, prefix: str = "timing.") -> None:
    """Every timing limit finite and in range; one line naming the field otherwise."""
    f.number(timing["warmup_s"], f"{prefix}warmup_s", ge=0, le=MAX_SECONDS)
    f.number(timing["min_time_s"], f"{prefix}min_time_s", ge=0, le=MAX_SECONDS)
    f.integer(timing["min_iters"], f"{prefix}min_iters", ge=2, le=MAX_ITERS)
    f.number(timing["max_cv"], f"{prefix}max_cv", gt=0, le=100)
    f.integer(timing["retries"], f"{prefix}retries", ge=0, le=MAX_RETRIES)
    f.number(timing["quiet_tolerance"], f"{prefix}quiet_tolerance", ge=0, le=100)
    f.number(timing["quiet_wait_s"], f"{prefix}quiet_wait_s", ge=0, le=MAX_SECONDS)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one call in milliseconds."""

    median: float
    p10: float
    p90: float
    mean: float
    std: float
    n: int

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean > 0 else float("inf")

    @property
    def robust_cv(self) -> float:
        """Spread of the bulk: (p90 − p10) / (2·1.2816·median), σ/median for a normal law.

        Sub-0.1 ms calls on a shared CPU have rare long stalls that inflate std/mean without
        moving the median; retries are decided on this figure, both are recorded.
        """
        return (self.p90 - self.p10) / (2 * 1.2816 * self.median) if self.median > 0 else 0.0

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        arr = np.asarray(samples_ms, dtype=float)
        if arr.size < 2:
            raise ValueError("latency statistics need at least two samples")
        return cls(
            median=float(np.median(arr)),
            p10=float(np.percentile(arr, 10)),
            p90=float(np.percentile(arr, 90)),
            mean=float(arr.mean()),
            std=float(arr.std(ddof=1)),
            n=int(arr.size),
        )

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "cv": self.cv, "robust_cv": self.robust_cv}


@dataclass(frozen=True)
class Timing:
    stats: LatencyStats
    attempts: int
    #: seconds of timing dropped because the machine ran slow (the quiet-machine gate)
    dropped_s: float = 0.0


@dataclass(frozen=True)
class _Attempt:
    stats: LatencyStats
    dropped_ns: int = 0


def _one_attempt(
    run_once: Callable[[], object], settings: TimingSettings, clock: Clock, gate: Gate | None
) -> _Attempt:
    samples: list[float] = []
    kept_ns = dropped_ns = 0
    chunk_ns, wait_ns = CHUNK_S * 1e9, settings.quiet_wait_s * 1e9

    def short(calls: int, elapsed_ns: float) -> bool:
        return calls < settings.min_iters or elapsed_ns < settings.min_time_s * 1e9

    quiet_before = gate is None or gate()
    while short(len(samples), kept_ns):
        chunk: list[float] = []
        start = clock()
        while clock() - start < chunk_ns and short(
            len(samples) + len(chunk), kept_ns + clock() - start
        ):
            t0 = clock()
            run_once()
            chunk.append((clock() - t0) / 1e6)
        spent = clock() - start
        quiet_after = gate is None or gate()
        if (quiet_before and quiet_after) or dropped_ns >= wait_ns:
            samples += chunk
            kept_ns += spent
        else:
            dropped_ns += clock() - start  # the probe's time too: quiet_wait_s is wall time
        quiet_before = quiet_after
    return _Attempt(LatencyStats.from_samples(samples), dropped_ns)


def time_callable(
    run_once: Callable[[], object],
    settings: TimingSettings,
    clock: Clock = time.perf_counter_ns,
    timed: Callable[[Callable[[], object], TimingSettings], LatencyStats] | None = None,
    gate: Gate | None = None,
) -> Timing:
    """Warm up, then time ``run_once``; retry while too noisy and keep the steadiest attempt.

    ``timed`` replaces the per-attempt loop for runtimes that time differently (CUDA events).
    ``gate`` replaces this machine's quiet-machine gate (tests drive it).
    """
    warm_until = clock() + settings.warmup_s * 1e9
    run_once()
    while clock() < warm_until:
        run_once()
    if timed is not None:
        attempt = lambda: _Attempt(timed(run_once, settings))  # noqa: E731
    else:
        if gate is None:
            gate = quiet_gate(settings.quiet_tolerance)
        attempt = lambda: _one_attempt(run_once, settings, clock, gate)  # noqa: E731
    best = attempt()
    attempts, dropped_ns = 1, best.dropped_ns
    while best.stats.robust_cv > settings.max_cv and attempts <= settings.retries:
        this = attempt()
        attempts += 1
        dropped_ns += this.dropped_ns
        if this.stats.robust_cv < best.stats.robust_cv:
            best = this
    return Timing(best.stats, attempts, dropped_ns / 1e9)
