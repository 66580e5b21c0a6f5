"""Energy per inference for the profiler: run a part in a loop over a long window, read the meter.

With a real meter, idle power is measured once (lazily, at the same power mode, right before the
first part) and subtracted for the dynamic figure. With the ``estimate`` meter nothing is run:
nominal power × measured latency is all an estimate can say, and it is labelled as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hnas_edge.backend.base import Closing, Inputs, Runtime
from hnas_edge.profiling.meters import PowerMeter, open_meter
from hnas_edge.profiling.meters.integrate import per_inference

IDLE_WINDOW_S = 2.0


class EnergyMeasurer(Closing):
    def __init__(self, meter: PowerMeter, nominal_power_w: float, window_s: float | None = None):
        self.meter = meter
        self.nominal_power_w = nominal_power_w
        # Much longer than the meter's update interval, so that edges and lag average out.
        self.window_s = window_s or max(2.0, 20 * meter.interval_s)
        self._idle_w: float | None = None

    @classmethod
    def for_device(cls, device: Any, window_s: float | None = None) -> EnergyMeasurer:
        return cls(
            open_meter(device.meter, device.nominal_power_w), device.nominal_power_w, window_s
        )

    @property
    def source(self) -> str:
        return self.meter.source

    @property
    def estimated(self) -> bool:
        return self.source == "estimate"

    @property
    def idle_w(self) -> float | None:
        """Idle power at rest, measured on first use (None for the estimate meter)."""
        if self.estimated:
            return None
        if self._idle_w is None:
            self.meter.start()
            time.sleep(IDLE_WINDOW_S)
            reading = self.meter.stop()
            self._idle_w = reading.energy_j / reading.duration_s
        return self._idle_w

    def per_inference(
        self,
        run_once: Callable[[], object],
        latency_ms: float,
        finish: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Energy per call of ``run_once``, looped over the window. ``finish`` waits for work
        still queued (an asynchronous GPU enqueue) before the meter stops."""
        if self.estimated:
            return {
                "total": self.nominal_power_w * latency_ms,  # W × ms = mJ
                "dynamic": None,
                "source": "estimate",
                "estimate": True,
                "nominal_power_w": self.nominal_power_w,
            }
        idle = self.idle_w
        count = 0
        self.meter.start()
        deadline = time.monotonic() + self.window_s
        while time.monotonic() < deadline:
            run_once()
            count += 1
        if finish is not None:
            finish()
        reading = self.meter.stop()
        energy = per_inference(reading.energy_j, reading.duration_s, count, idle)
        return {
            "total": energy.total_mj,
            "dynamic": energy.dynamic_mj,
            "source": self.source,
            "window_s": reading.duration_s,
            "n": count,
            "idle_w": idle,
        }

    def of_runtime(self, runtime: Runtime, inputs: Inputs, latency_ms: float) -> dict[str, Any]:
        """Energy of the call the runtime timed: prepared inputs (no host copies), the same
        enqueue (a CUDA-graph replay, a TensorRT enqueue), synchronised before the meter stops.
        Looping ``runtime.run`` instead would price copies and host gaps the latency left out."""
        if self.estimated:
            return self.per_inference(lambda: None, latency_ms)
        prepared = runtime.prepare(inputs)
        return self.per_inference(
            lambda: runtime.run_prepared(prepared), latency_ms, finish=runtime.synchronize
        )

    def close(self) -> None:
        self.meter.close()
