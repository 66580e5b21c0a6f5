"""The one interface every power meter implements, and the background sampler two of them share."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from hnas_edge.profiling.meters.integrate import trapezoid_j


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one window. ``estimated`` when it is nominal power × time, not a reading."""

    energy_j: float
    duration_s: float
    samples: int
    estimated: bool = False


class PowerMeter(ABC):
    source: str = ""
    interval_s: float = 0.1

    @abstractmethod
    def start(self) -> None:
        """Begin a measurement window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """End the window and return its energy."""

    def close(self) -> None:
        """Release the meter (default: nothing to release)."""
        return None


class PowerSampler:
    """Reads ``read_w()`` every ``interval_s`` on a thread, with its own monotonic timestamps."""

    def __init__(self, read_w: Callable[[], float], interval_s: float) -> None:
        self.read_w, self.interval_s = read_w, interval_s
        self.times: list[float] = []
        self.powers: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.times.append(time.monotonic())
        self.powers.append(float(self.read_w()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        self.times, self.powers = [], []
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> EnergyReading:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        energy = trapezoid_j(self.times, self.powers)
        return EnergyReading(energy, self.times[-1] - self.times[0], len(self.times))
