"""Energy from power samples or energy counters: pure arithmetic, tested on every machine.

Units are in the names: seconds (_s), watts (_w), joules (_j), millijoules (_mj).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hnas_edge.errors import HnasError


def _trace(t_s: Sequence[float], p_w: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(t_s, dtype=float), np.asarray(p_w, dtype=float)
    if t.shape != p.shape or t.ndim != 1:
        raise HnasError("a power trace needs as many timestamps as power samples")
    if t.size < 2:
        raise HnasError(
            f"a power trace of {t.size} sample(s) cannot be integrated; measure over a window "
            "several times longer than the meter's sampling interval"
        )
    if np.any(np.diff(t) < 0):
        raise HnasError("power trace timestamps go backwards; use one monotonic clock")
    return t, p


def trapezoid_j(
    t_s: Sequence[float],
    p_w: Sequence[float],
    start_s: float | None = None,
    end_s: float | None = None,
) -> float:
    """∫P dt over [start_s, end_s] (default: the whole trace), power linearly interpolated at the
    window edges. The window must lie inside the trace."""
    t, p = _trace(t_s, p_w)
    start = t[0] if start_s is None else start_s
    end = t[-1] if end_s is None else end_s
    if not t[0] <= start <= end <= t[-1]:
        raise HnasError(
            f"window [{start:.3f}, {end:.3f}] s lies outside the trace [{t[0]:.3f}, {t[-1]:.3f}] s"
        )
    inside = (t > start) & (t < end)
    times = np.concatenate([[start], t[inside], [end]])
    powers = np.concatenate([[np.interp(start, t, p)], p[inside], [np.interp(end, t, p)]])
    return float(np.sum((powers[1:] + powers[:-1]) / 2 * np.diff(times)))


def mean_power_w(t_s: Sequence[float], p_w: Sequence[float]) -> float:
    """Time-weighted mean power of a trace (the idle baseline when the device is at rest)."""
    t, _ = _trace(t_s, p_w)
    return trapezoid_j(t_s, p_w) / (t[-1] - t[0])


def counter_delta(first: float, last: float, max_range: float | None = None) -> float:
    """``last − first`` of a cumulative counter that wraps to zero after ``max_range``."""
    if last >= first:
        return last - first
    if max_range is None:
        raise HnasError("the energy counter went backwards and its wrap-around range is unknown")
    return max_range - first + last


@dataclass(frozen=True)
class EnergyPerInference:
    total_mj: float
    dynamic_mj: float | None


def per_inference(
    energy_j: float, duration_s: float, inferences: int, idle_w: float | None
) -> EnergyPerInference:
    """E_total = E/N and E_dynamic = (E − P_idle·T)/N, in millijoules."""
    if inferences < 1 or duration_s <= 0:
        raise HnasError("energy per inference needs at least one inference over a positive time")
    total = energy_j / inferences * 1e3
    dynamic = None if idle_w is None else (energy_j - idle_w * duration_s) / inferences * 1e3
    return EnergyPerInference(total, dynamic)
