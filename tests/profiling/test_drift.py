"""The drift reference: a machine that slows down while it profiles is seen and corrected for,
and the measuring thread runs on one core where the OS allows."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from hnas_edge.backend.base import Runtime, Source
from hnas_edge.backend.timing import LatencyStats, Timing, TimingSettings
from hnas_edge.errors import HnasError
from hnas_edge.profiling import drift as drift_module
from hnas_edge.profiling import measure as measure_module
from hnas_edge.profiling import profiler as profiler_module
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import (
    DriftSession,
    ReferenceTime,
    correction,
    lut_baseline,
    reference_at,
)
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.pinning import pinned
from hnas_edge.profiling.profiler import ProfileRequest, profile
from hnas_edge.profiling.summary import summarize


class Clock:
    """Seconds since the epoch that advance only when the fake runtime times something."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class SlowingRuntime(Runtime):
    """Times a module as its parameter count in µs, times a slow-down that grows linearly with
    the clock: the machine gets 1% slower every second, as a shared machine might."""

    name = "onnxruntime"
    accepts = frozenset({Source.MODULE})

    def __init__(self, clock: Clock, **_: Any) -> None:
        self.clock, self.cost_ms = clock, 0.0

    def slowdown(self) -> float:
        return 1.0 + 0.01 * (self.clock.now - 1_000_000.0)

    def _load(self, source: Source, model: Any, input_names: Any) -> None:
        self.cost_ms = 1e-3 * (1 + sum(p.numel() for p in model.parameters()))

    def run(self, inputs: Any) -> list[np.ndarray]:
        return []

    def time(self, inputs: Any, settings: TimingSettings) -> Timing:
        self.clock.now += 0.5
        value = self.cost_ms * self.slowdown()
        self.clock.now += 0.5
        return Timing(LatencyStats.from_samples([value, value]), 1)

    def close(self) -> None:
        self.cost_ms = 0.0

    def describe(self) -> dict[str, Any]:
        return {"name": "slowing fake"}


@pytest.fixture
def slowing(monkeypatch):
    """Every runtime the profiler and the drift reference open is a :class:`SlowingRuntime`
    on one shared clock (also the clock the profiler reads)."""
    clock = Clock()
    monkeypatch.setattr(measure_module, "get_runtime", lambda *a, **k: SlowingRuntime(clock))
    monkeypatch.setattr(drift_module, "get_runtime", lambda *a, **k: SlowingRuntime(clock))
    monkeypatch.setattr(profiler_module.time, "time", clock)
    monkeypatch.setattr(profiler_module, "machine_load", lambda: {})
    return clock


def device(**changes: Any) -> DeviceProfile:
    fields = {"name": "cpu", "runtime": "onnxruntime", "meter": "estimate", "pin_core": False}
    return DeviceProfile(**{**fields, **changes})


def ratios(lut: Lut, figure) -> np.ndarray:
    """Each entry's figure over its true (undrifted) cost, the parameter count in µs."""
    from hnas_edge.space.specs import spec_from_dict

    true = {
        key: 1e-3 * (1 + sum(p.numel() for p in spec_from_dict(e["spec"]).build().parameters()))
        for key, e in lut.entries.items()
    }
    return np.array([figure(e) / true[k] for k, e in lut.entries.items()])


def test_a_machine_slowing_down_while_it_profiles_is_corrected_by_the_drift_reference(
    slowing, tmp_path
):
    lut = profile(
        ProfileRequest(device(reference_every=8), "avmnist", tmp_path / "l.json", limit=24)
    )
    raw = ratios(lut, lambda e: e["raw"]["latency_ms"]["median"])
    corrected = ratios(lut, lambda e: e["latency_ms"]["median"])
    # the last part was measured ~25% slower than the first ...
    assert raw.max() / raw.min() > 1.2
    # ... and once corrected, every part is at one speed: the reference's median one
    assert corrected.max() / corrected.min() == pytest.approx(1.0, abs=1e-9)
    times = lut.extra["drift"]["times"]
    assert len(times) == 4  # before parts 1, 9, 17 and after the last
    assert lut.extra["drift"]["baseline_ms"] == pytest.approx(
        np.median([t["latency_ms"] for t in times])
    )
    # estimated energy (nominal power × latency) is corrected with the latency
    power = [e["energy_mj"]["total"] / e["latency_ms"]["median"] for e in lut.entries.values()]
    assert max(power) / min(power) == pytest.approx(1.0, abs=1e-9)
    written = Lut.load(tmp_path / "l.json")
    assert all(written.latency_ms(k) == lut.latency_ms(k) for k in lut.entries)
    # `hnas lut show` says how far the machine strayed from the baseline while it measured
    shown = summarize(written).drift
    assert shown.timings == 4 and shown.baseline_ms == lut.extra["drift"]["baseline_ms"]
    assert shown.fastest < 1 < shown.slowest and shown.slowest / shown.fastest > 1.2


def test_without_the_reference_the_entries_stay_as_measured(slowing, tmp_path):
    lut = profile(
        ProfileRequest(device(reference_every=0), "avmnist", tmp_path / "l.json", limit=8)
    )
    assert "drift" not in lut.extra
    assert all(e["latency_ms"] == e["raw"]["latency_ms"] for e in lut.entries.values())


def test_a_resume_corrects_new_entries_to_the_same_baseline(slowing, tmp_path):
    out = tmp_path / "l.json"
    profile(ProfileRequest(device(), "avmnist", out, limit=10))
    slowing.now += 100  # the machine is twice as slow when the profile resumes
    lut = profile(ProfileRequest(device(), "avmnist", out, resume=True, limit=10))
    assert len(lut) == 20
    corrected = ratios(lut, lambda e: e["latency_ms"]["median"])
    assert corrected.max() / corrected.min() == pytest.approx(1.0, abs=1e-9)


def test_reference_speed_is_interpolated_between_timings_and_held_outside_them():
    times = [ReferenceTime(10.0, 1.0, "profile"), ReferenceTime(20.0, 2.0, "profile")]
    assert reference_at(times, 15.0) == pytest.approx(1.5)
    assert reference_at(times, 0.0) == 1.0
    assert reference_at(times, 99.0) == 2.0
    assert correction(1.5, times, 20.0) == pytest.approx(0.75)  # twice as slow: × 1.5/2


def test_the_session_times_the_reference_every_k_measurements_and_once_after():
    class Counting:
        times: list = []

        def time(self) -> None:
            self.times.append(ReferenceTime(0.0, 1.0, "test"))

    counting = Counting()
    session = DriftSession(counting, every=3)  # type: ignore[arg-type]
    for _ in range(7):
        session.tick()
    session.finish()
    assert len(counting.times) == 4  # before measurements 1, 4, 7, and after 7


def test_a_lut_of_another_reference_network_has_no_baseline_to_compare_with():
    assert lut_baseline({"reference": drift_module.REFERENCE, "baseline_ms": 0.1}) == 0.1
    assert lut_baseline({"reference": "something-else/1", "baseline_ms": 0.1}) is None
    assert lut_baseline(None) is None


def test_the_reference_network_is_the_same_every_time():
    import torch

    first, example = drift_module.reference_module()
    second, _ = drift_module.reference_module()
    state = torch.random.get_rng_state()
    with torch.no_grad():
        assert torch.equal(first(example["input0"]), second(example["input0"]))
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's stream untouched


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_the_measuring_thread_is_pinned_to_one_allowed_core_and_released_after():
    before = os.sched_getaffinity(0)
    with pinned(True) as core:
        assert core in before
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pinned(False) as core:
        assert core is None
        assert os.sched_getaffinity(0) == before


def test_a_lut_profiled_before_pin_core_existed_resumes_with_todays_profile():
    recorded = {k: v for k, v in device().to_dict().items() if k != "reference_every"}
    assert DeviceProfile.with_defaults(recorded)["reference_every"] == 8


def test_a_lut_timed_before_the_quiet_gate_existed_compares_equal_to_todays_profile():
    today = device().to_dict()
    recorded = {**today, "timing": {k: v for k, v in today["timing"].items() if "quiet" not in k}}
    assert DeviceProfile.with_defaults(recorded) == today


def test_profile_validate_measures_parts_and_networks_in_one_shuffled_queue(slowing, tmp_path):
    lut = profile(ProfileRequest(device(), "avmnist", tmp_path / "l.json", validate=8))
    validation = lut.extra["validation"]
    assert validation["interleaved"] and validation["n"] == 8
    parts_at = sorted(e["drift"]["at"] for e in lut.entries.values())
    networks = validation["networks"]
    networks_at = [n["at"] for n in networks]
    assert parts_at[0] < min(networks_at) and max(networks_at) < parts_at[-1]
    # the networks are expressed at the LUT's speed: raw and corrected differ by the drift
    assert {n["raw_latency_ms"] == n["latency_ms"] for n in networks} == {False}
    assert lut.calibration_for("latency").fitted_on == 4
    assert validation["latency"]["calibration_chosen"] in ("plain", "per_kind")


def test_profile_validate_needs_the_whole_space_and_enough_networks(tmp_path):
    with pytest.raises(HnasError, match="at least 8"):
        profile(ProfileRequest(device(), "avmnist", tmp_path / "l.json", validate=3))
    with pytest.raises(HnasError, match="drop --shard and --limit"):
        profile(ProfileRequest(device(), "avmnist", tmp_path / "l.json", validate=8, limit=3))
    assert not (tmp_path / "l.json").exists()
