"""Power meters, one module each, chosen by name from the device profile; imported lazily."""

from __future__ import annotations

from typing import Any

from hnas_edge.errors import ConfigError
from hnas_edge.profiling.meters.base import EnergyReading, PowerMeter


def open_meter(name: str, nominal_power_w: float) -> PowerMeter:
    """The named meter; ``rapl`` falls back to ``estimate`` where the counters are unreadable."""
    if name == "estimate":
        from hnas_edge.profiling.meters.estimate import EstimateMeter

        return EstimateMeter(nominal_power_w)
    if name == "rapl":
        from hnas_edge.profiling.meters.estimate import EstimateMeter
        from hnas_edge.profiling.meters.rapl import RaplMeter

        return RaplMeter() if RaplMeter.available() else EstimateMeter(nominal_power_w)
    factories: dict[str, Any] = {
        "nvml": ("hnas_edge.profiling.meters.nvml", "NvmlMeter"),
        "jtop": ("hnas_edge.profiling.meters.jtop", "JtopMeter"),
    }
    if name not in factories:
        raise ConfigError(f"unknown meter {name!r}; use one of estimate, rapl, nvml, jtop")
    import importlib

    module, cls = factories[name]
    return getattr(importlib.import_module(module), cls)()


__all__ = ["EnergyReading", "PowerMeter", "open_meter"]
