"""A snapshot of the device's state, recorded in the LUT next to the figures it shaped.

Everything here is read without privileges and is best effort: a value that cannot be read is
recorded as ``None`` rather than guessed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
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


#: Share of the machine's CPU time other processes may take before a measurement is called busy.
BUSY_SHARE = 0.25


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where unreadable."""
    line = (_read("/proc/stat") or "").splitlines()[:1]
    fields = line[0].split()[1:] if line and line[0].startswith("cpu ") else []
    try:
        values = [int(v) for v in fields]
    except ValueError:
        return None
    if len(values) < 5:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def machine_load(window_s: float = 0.5) -> dict[str, Any]:
    """How busy the machine is now: load average, and the share of all its CPUs that other
    processes used over ``window_s`` (None where /proc/stat is unreadable)."""
    cpus = os.cpu_count() or 1
    start, own = _cpu_jiffies(), _own_cpu_s()
    time.sleep(window_s)
    end, own = _cpu_jiffies(), _own_cpu_s() - own
    others = None
    if start is not None and end is not None and end[1] > start[1]:
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy_s = (end[0] - start[0]) / tick
        total_s = (end[1] - start[1]) / tick
        others = round(min(1.0, max(0.0, (busy_s - own) / total_s)), 3)
    return {
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpus": cpus,
        "others_cpu_share": others,
    }


def busy_warning(load: dict[str, Any], when: str) -> str | None:
    """One line when other processes took at least :data:`BUSY_SHARE` of the CPUs, else None."""
    share = load.get("others_cpu_share")
    if share is None or share < BUSY_SHARE:
        return None
    average = (load.get("load_average") or [None])[0]
    shown = f", load average {average:.2f}" if average is not None else ""
    return (
        f"warning: the machine was busy {when} (other processes used {share:.0%} of its "
        f"{load.get('cpus')} CPUs{shown}): figures measured now are slower and noisier than on "
        "an idle machine; stop other work and measure again"
    )


def load_warnings(load: Any) -> list[str]:
    """A line for each moment (``before``, ``after`` measuring) the machine was busy."""
    load = load if isinstance(load, dict) else {}
    lines = [
        busy_warning(load[when], f"{when} measuring")
        for when in ("before", "after")
        if isinstance(load.get(when), dict)
    ]
    return [line for line in lines if line]
