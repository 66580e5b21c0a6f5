"""Power meters: RAPL on a fake powercap tree, the estimate meter, the sampler, jtop's dict."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hnas_edge.backend.base import Runtime
from hnas_edge.errors import HnasError
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.meters import open_meter
from hnas_edge.profiling.meters.base import PowerSampler
from hnas_edge.profiling.meters.estimate import EstimateMeter
from hnas_edge.profiling.meters.jtop import total_power_w
from hnas_edge.profiling.meters.rapl import RaplMeter, package_domains


def powercap(tmp_path, energy_uj=1000, max_range=10_000):
    for name in ("intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1"):
        domain = tmp_path / name
        domain.mkdir()
        (domain / "energy_uj").write_text(str(energy_uj))
        (domain / "max_energy_range_uj").write_text(str(max_range))
    return tmp_path


def test_rapl_reads_package_domains_only_and_handles_wrap_around(tmp_path):
    root = powercap(tmp_path)
    assert [d.name for d in package_domains(root)] == ["intel-rapl:0", "intel-rapl:1"]
    meter = RaplMeter(root)
    meter.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("3000")  # +2000 µJ
    (root / "intel-rapl:1" / "energy_uj").write_text("500")  # wrapped: +9500 µJ
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(0.0115)
    assert not reading.estimated


def test_unreadable_rapl_falls_back_to_an_estimate(tmp_path):
    assert not RaplMeter.available(tmp_path)
    with pytest.raises(HnasError, match="no RAPL package domain"):
        RaplMeter(tmp_path)
    assert open_meter("estimate", 10.0).source == "estimate"


def test_the_estimate_meter_is_nominal_power_times_time_and_says_so():
    meter = EstimateMeter(nominal_power_w=20.0)
    meter.start()
    time.sleep(0.05)
    reading = meter.stop()
    assert reading.estimated
    assert reading.energy_j == pytest.approx(20.0 * reading.duration_s)


def test_the_estimating_measurer_runs_nothing_and_labels_its_figure():
    class Device:
        meter, nominal_power_w = "estimate", 15.0

    measurer = EnergyMeasurer.for_device(Device())
    calls = []
    energy = measurer.per_inference(lambda: calls.append(1), latency_ms=2.0)
    assert calls == []
    assert energy == {
        "total": 30.0, "dynamic": None, "source": "estimate", "estimate": True,
        "nominal_power_w": 15.0,
    }  # fmt: skip
    assert measurer.idle_w is None


def test_a_real_meter_measures_idle_and_the_loop(tmp_path):
    class Ramp(EstimateMeter):
        """A stand-in meter whose power is 10 W at rest and 30 W while the loop runs."""

        source = "fake"
        interval_s = 0.01

    meter = Ramp(10.0)
    measurer = EnergyMeasurer(meter, 10.0, window_s=0.05)
    assert measurer.idle_w == pytest.approx(10.0, rel=0.01)
    energy = measurer.per_inference(lambda: time.sleep(0.001), latency_ms=1.0)
    assert energy["n"] > 5 and energy["source"] == "fake"
    assert energy["dynamic"] == pytest.approx(0.0, abs=1e-6)  # same power loaded as idle


def test_the_sampler_integrates_with_its_own_timestamps():
    sampler = PowerSampler(lambda: 50.0, interval_s=0.01)
    sampler.start()
    time.sleep(0.1)
    reading = sampler.stop()
    assert reading.samples >= 3
    assert reading.energy_j == pytest.approx(50.0 * reading.duration_s)


def test_jtop_total_power_is_read_from_the_instantaneous_value():
    power = {"tot": {"power": 7430, "avg": 5000}, "rail": {}}
    assert total_power_w(power) == pytest.approx(7.43)
    with pytest.raises(HnasError, match="power\\['tot'\\]\\['power'\\]"):
        total_power_w({"rail": {}})


@pytest.mark.gpu
def test_nvml_reads_energy_on_a_real_gpu():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA driver here")
    meter = open_meter("nvml", 300.0)
    meter.start()
    time.sleep(0.5)
    reading = meter.stop()
    meter.close()
    assert reading.energy_j > 0


@pytest.mark.jetson
def test_jtop_reads_board_power_on_a_jetson():
    pytest.importorskip("jtop")
    meter = open_meter("jtop", 30.0)
    meter.start()
    time.sleep(2.0)
    reading = meter.stop()
    meter.close()
    assert reading.energy_j > 0 and reading.samples >= 2


def test_energy_of_a_runtime_loops_the_timed_call_and_waits_for_the_device():
    """What the window runs is what latency timed (prepared inputs, no copies); queued device
    work is waited for before the meter stops, or it would be counted in the next window."""
    events: list[str] = []

    class Meter(EstimateMeter):
        source, interval_s = "fake", 0.01

        def stop(self):
            events.append("stop")
            return super().stop()

    class Queued(Runtime):
        def _load(self, source, model, input_names):
            raise AssertionError

        def run(self, inputs):
            raise AssertionError("the window must not run copies-included calls")

        def prepare(self, inputs):
            events.append("prepare")
            return "on-device"

        def run_prepared(self, prepared):
            assert prepared == "on-device"
            events.append("enqueue")

        def synchronize(self):
            events.append("sync")

        def close(self):
            pass

        def describe(self):
            return {}

    measurer = EnergyMeasurer(Meter(10.0), 10.0, window_s=0.02)
    measurer.idle_w  # noqa: B018 (measured first, before the window)
    events.clear()
    energy = measurer.of_runtime(Queued(), {"x": np.zeros(1)}, latency_ms=1.0)
    assert events[0] == "prepare" and events[-2:] == ["sync", "stop"]
    assert events.count("enqueue") == energy["n"] > 0
