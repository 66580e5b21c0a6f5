"""A snapshot of the device's state, recorded in the LUT next to the figures it shaped.

Everything here is read without privileges and is best effort: a value that cannot be read is
recorded as ``None`` rather than guessed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hnas_edge.profiling.device import DeviceProfile


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _cpu_model() -> str | None:
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _temperatures_c() -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        kind, value = _read(zone / "type"), _read(zone / "temp")
        if kind and value and value.lstrip("-").isdigit():
            temps[kind] = int(value) / 1000.0
    return temps


def _command(*args: str) -> str | None:
    """Output of a device tool such as ``nvpmodel -q`` where it exists, else None."""
    if shutil.which(args[0]) is None:
        return None
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def device_state(device: DeviceProfile) -> dict[str, Any]:
    cpu0 = "/sys/devices/system/cpu/cpu0/cpufreq"
    state: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_governor": _read(f"{cpu0}/scaling_governor"),
        "cpu_cur_freq_khz": _read(f"{cpu0}/scaling_cur_freq"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "temperatures_c": _temperatures_c(),
    }
    if device.meter == "jtop" or device.power_mode:
        state["nvpmodel"] = _command("nvpmodel", "-q")
        state["jetson_clocks_requested"] = device.lock_clocks
    if device.runtime in ("tensorrt", "torch") or device.meter == "nvml":
        state["nvidia_smi"] = _command(
            "nvidia-smi",
            "--query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.limit",
            "--format=csv,noheader",
        )
    return state
