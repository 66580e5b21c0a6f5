"""Jetson boards through jetson-stats (jtop): total board power sampled in the background.

jtop's ``power['tot']`` holds the instantaneous ``power`` (mW) and a running ``avg``; only the
instantaneous value is used, integrated over our own timestamps (the average is half-weighted
history, not the window's mean).
"""

from __future__ import annotations

from typing import Any

from hnas_edge.errors import HnasError, MissingLibraryError
from hnas_edge.profiling.meters.base import EnergyReading, PowerMeter, PowerSampler


def total_power_w(power: dict[str, Any]) -> float:
    """Board power in watts from a jtop ``power`` dict (``{'tot': {'power': mW, ...}, ...}``)."""
    try:
        return float(power["tot"]["power"]) / 1e3
    except (KeyError, TypeError, ValueError):
        raise HnasError(
            "jtop reports no total board power (power['tot']['power']); update jetson-stats"
        ) from None


class JtopMeter(PowerMeter):
    source = "jtop"

    def __init__(self) -> None:
        try:
            from jtop import jtop
        except ImportError:
            raise MissingLibraryError(
                "jetson-stats", 'pip install "hnas-edge[jetson]"', "the jtop power meter"
            ) from None
        self.jetson = jtop()
        self.jetson.start()
        if not self.jetson.ok():
            raise HnasError("the jtop service does not answer; run `sudo systemctl restart jtop`")
        self.interval_s = float(getattr(self.jetson, "interval", 0.5))
        self.sampler = PowerSampler(lambda: total_power_w(self.jetson.power), self.interval_s)

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> EnergyReading:
        return self.sampler.stop()

    def close(self) -> None:
        self.jetson.close()
