"""The timing loop every runtime shares, driven by a fake clock so its rules are exact."""

from __future__ import annotations

import numpy as np
import pytest

from hnas_edge.backend.quiet import MachineSpeed, matmul_probe, quiet_gate
from hnas_edge.backend.timing import LatencyStats, TimingSettings, time_callable
from hnas_edge.errors import ConfigError


class FakeClock:
    """A clock in ns that advances by the durations the fake call consumes."""

    def __init__(self, durations_ms):
        self.now, self.durations, self.calls = 0, iter(durations_ms), 0

    def __call__(self):
        return self.now

    def call(self):
        self.calls += 1
        self.now += int(next(self.durations) * 1e6)


def ungated(**settings):
    """Timing settings with the quiet-machine gate off: the fake clock alone decides."""
    return TimingSettings(quiet_tolerance=0, **settings)


def constant(ms):
    while True:
        yield ms


def test_stats_match_numpy():
    samples = [1.0, 2.0, 3.0, 4.0, 10.0]
    stats = LatencyStats.from_samples(samples)
    assert stats.median == 3.0 and stats.n == 5
    assert stats.p10 == pytest.approx(np.percentile(samples, 10))
    assert stats.std == pytest.approx(np.std(samples, ddof=1))
    assert stats.cv == pytest.approx(np.std(samples, ddof=1) / np.mean(samples))


def test_at_least_min_iters_and_min_time_are_timed():
    clock = FakeClock(constant(1.0))
    settings = ungated(warmup_s=0, min_iters=10, min_time_s=0.05, max_cv=1, retries=0)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.stats.n == 50  # 50 ms at 1 ms a call beats 10 iterations
    assert timing.stats.median == pytest.approx(1.0)


def test_warm_up_calls_are_not_timed():
    durations = iter([100.0] * 3 + [1.0] * 1000)
    clock = FakeClock(durations)
    settings = ungated(warmup_s=0.25, min_iters=5, min_time_s=0, max_cv=1, retries=0)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.stats.median == pytest.approx(1.0)
    assert timing.stats.p90 == pytest.approx(1.0)


def test_a_noisy_attempt_is_retried_and_the_steadiest_kept():
    noisy = [1.0, 3.0] * 10
    steady = [2.0] * 20
    clock = FakeClock(iter([1.0] + noisy + steady + [1.0] * 100))
    settings = ungated(warmup_s=0, min_iters=20, min_time_s=0, max_cv=0.05, retries=2)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.attempts == 2
    assert timing.stats.median == pytest.approx(2.0)


def test_out_of_range_settings_are_refused():
    with pytest.raises(ConfigError, match="timing.min_iters = 1"):
        TimingSettings(min_iters=1)


# --- the quiet-machine gate -----------------------------------------------------------------


def gate_saying(*answers):
    """A gate that answers as told, then says the machine is quiet."""
    told = iter(answers)
    return lambda: next(told, True)


def test_chunks_beside_a_slow_probe_are_dropped_and_timed_again():
    # chunks of 20 ms: the first timed at 2 ms a call on a slow machine, the rest at 1 ms
    clock = FakeClock(iter([1.0] + [2.0] * 10 + [1.0] * 1000))
    settings = TimingSettings(warmup_s=0, min_iters=10, min_time_s=0.02, max_cv=1, retries=0)
    # quiet before the first chunk, slow after it, quiet from then on: the probe between the
    # first and second chunk was slow, so both are dropped
    timing = time_callable(clock.call, settings, clock=clock, gate=gate_saying(True, False))
    assert timing.stats.median == pytest.approx(1.0) and timing.stats.p90 == pytest.approx(1.0)
    assert timing.dropped_s == pytest.approx(0.04)


def test_a_machine_that_never_quietens_is_timed_after_quiet_wait_s():
    clock = FakeClock(constant(2.0))
    settings = TimingSettings(
        warmup_s=0, min_iters=10, min_time_s=0.02, max_cv=1, retries=0, quiet_wait_s=0.05
    )
    timing = time_callable(clock.call, settings, clock=clock, gate=lambda: False)
    assert timing.dropped_s == pytest.approx(0.06)  # three chunks of 20 ms, then it gave up
    assert timing.stats.n == 10 and timing.stats.median == pytest.approx(2.0)


def test_the_machine_is_quiet_within_tolerance_of_its_fastest_recent_probe():
    speed = MachineSpeed(iter([10, 10, 13, 11, 12]).__next__, memory=8)
    assert [speed.quiet(0.15) for _ in range(5)] == [True, True, False, True, False]


def test_a_machine_that_slows_for_good_becomes_its_usual_speed():
    speed = MachineSpeed(iter([10, 13, 13, 13, 13]).__next__, memory=3)
    assert [speed.quiet(0.15) for _ in range(5)] == [True, False, False, True, True]


def test_the_gate_is_off_at_zero_tolerance_and_probes_this_machine_otherwise():
    assert quiet_gate(0.0) is None
    assert quiet_gate(0.15)() in (True, False)
    assert matmul_probe(calls=4)() > 0
