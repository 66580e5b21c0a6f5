"""No meter: nominal power × time, always labelled an estimate."""

from __future__ import annotations

import time

from hnas_edge.profiling.meters.base import EnergyReading, PowerMeter


class EstimateMeter(PowerMeter):
    source = "estimate"

    def __init__(self, nominal_power_w: float) -> None:
        self.nominal_power_w = nominal_power_w
        self._start = 0.0

    def start(self) -> None:
        self._start = time.monotonic()

    def stop(self) -> EnergyReading:
        duration = time.monotonic() - self._start
        return EnergyReading(self.nominal_power_w * duration, duration, 0, estimated=True)
