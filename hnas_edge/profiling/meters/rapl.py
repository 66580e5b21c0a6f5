"""Intel/AMD RAPL through Linux powercap: package energy counters in µJ, with wrap-around."""

from __future__ import annotations

import time
from pathlib import Path

from hnas_edge.errors import HnasError
from hnas_edge.profiling.meters.base import EnergyReading, PowerMeter
from hnas_edge.profiling.meters.integrate import counter_delta

POWERCAP = Path("/sys/class/powercap")


def package_domains(root: Path = POWERCAP) -> list[Path]:
    """Top-level package domains (intel-rapl:0, ...), not their core/uncore subdomains."""
    return sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)


def _read_int(path: Path) -> int:
    return int(path.read_text(encoding="utf-8").strip())


class RaplMeter(PowerMeter):
    source = "rapl"
    interval_s = 0.001

    def __init__(self, root: Path = POWERCAP) -> None:
        self.domains = package_domains(root)
        if not self.domains:
            raise HnasError(f"no RAPL package domain under {root}")
        try:
            self.ranges = [_read_int(d / "max_energy_range_uj") for d in self.domains]
            self._read()
        except (OSError, ValueError) as exc:
            raise HnasError(
                f"RAPL counters are not readable ({exc}); run as a user allowed "
                "to read /sys/class/powercap/*/energy_uj"
            ) from None
        self._first: list[int] = []
        self._start = 0.0

    @classmethod
    def available(cls, root: Path = POWERCAP) -> bool:
        try:
            cls(root)
        except HnasError:
            return False
        return True

    def _read(self) -> list[int]:
        return [_read_int(d / "energy_uj") for d in self.domains]

    def start(self) -> None:
        self._first, self._start = self._read(), time.monotonic()

    def stop(self) -> EnergyReading:
        last, duration = self._read(), time.monotonic() - self._start
        uj = sum(
            counter_delta(a, b, r) for a, b, r in zip(self._first, last, self.ranges, strict=True)
        )
        return EnergyReading(uj / 1e6, duration, 2)
