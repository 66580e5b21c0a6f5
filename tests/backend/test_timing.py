"""The timing loop every runtime shares, driven by a fake clock so its rules are exact."""

from __future__ import annotations

import numpy as np
import pytest

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
    settings = TimingSettings(warmup_s=0, min_iters=10, min_time_s=0.05, max_cv=1, retries=0)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.stats.n == 50  # 50 ms at 1 ms a call beats 10 iterations
    assert timing.stats.median == pytest.approx(1.0)


def test_warm_up_calls_are_not_timed():
    durations = iter([100.0] * 3 + [1.0] * 1000)
    clock = FakeClock(durations)
    settings = TimingSettings(warmup_s=0.25, min_iters=5, min_time_s=0, max_cv=1, retries=0)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.stats.median == pytest.approx(1.0)
    assert timing.stats.p90 == pytest.approx(1.0)


def test_a_noisy_attempt_is_retried_and_the_steadiest_kept():
    noisy = [1.0, 3.0] * 10
    steady = [2.0] * 20
    clock = FakeClock(iter([1.0] + noisy + steady + [1.0] * 100))
    settings = TimingSettings(warmup_s=0, min_iters=20, min_time_s=0, max_cv=0.05, retries=2)
    timing = time_callable(clock.call, settings, clock=clock)
    assert timing.attempts == 2
    assert timing.stats.median == pytest.approx(2.0)


def test_out_of_range_settings_are_refused():
    with pytest.raises(ConfigError, match="timing.min_iters = 1"):
        TimingSettings(min_iters=1)
