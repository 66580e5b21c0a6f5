"""NVIDIA GPUs through NVML (nvidia-ml-py): the total-energy counter (mJ) where the GPU has one,
else power samples (mW) integrated in the background. The counter is preferred: on Ampere and
newer GPUs (GA100 excepted) the power reading is an average over the last second (NVML's
documentation of ``nvmlDeviceGetPowerUsage``), which lags a short load at both ends; see
docs/internals.md, "Profiling"."""

from __future__ import annotations

import time

from hnas_edge.errors import HnasError, MissingLibraryError
from hnas_edge.profiling.meters.base import EnergyReading, PowerMeter, PowerSampler


class NvmlMeter(PowerMeter):
    source = "nvml"
    interval_s = 0.1  # both NVML readings update about every 100 ms

    def __init__(self, index: int = 0) -> None:
        try:
            import pynvml
        except ImportError:
            raise MissingLibraryError(
                "nvidia-ml-py", 'pip install "hnas-edge[gpu]"', "the nvml power meter"
            ) from None
        self.nvml = pynvml
        try:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            raise HnasError(f"NVML cannot open GPU {index}: {exc}") from None
        self.counter = self._has_counter()
        self.sampler = PowerSampler(self._power_w, self.interval_s)
        self._first = 0
        self._start = 0.0

    def _has_counter(self) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except self.nvml.NVMLError:
            return False
        return True

    def _power_w(self) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1e3

    def start(self) -> None:
        if self.counter:
            self._first = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self._start = time.monotonic()
        else:
            self.sampler.start()

    def stop(self) -> EnergyReading:
        if not self.counter:
            return self.sampler.stop()
        last = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        return EnergyReading((last - self._first) / 1e3, time.monotonic() - self._start, 2)

    def close(self) -> None:
        self.nvml.nvmlShutdown()
