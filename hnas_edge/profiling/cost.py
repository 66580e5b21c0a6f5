"""Network cost from a LUT: the sum of its parts, then the device calibration.

This is the one cost function of the project: ``hnas lut predict`` prints it, ``hnas lut validate``
checks it against end-to-end measurements, and the search optimises it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hnas_edge.errors import HnasError
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.transfer import fine_group
from hnas_edge.space.specs import LayerSpec

Parts = Sequence[tuple[str, LayerSpec]]


@dataclass(frozen=True)
class PartCost:
    name: str
    key: str
    latency_ms: float
    energy_mj: float | None


@dataclass(frozen=True)
class CostBreakdown:
    """Per-part figures, their raw sums and the calibrated whole-network estimates."""

    parts: tuple[PartCost, ...]
    latency_sum_ms: float
    energy_sum_mj: float | None
    latency_ms: float
    energy_mj: float | None
    calibrated: bool
    energy_is_estimate: bool

    @property
    def n_parts(self) -> int:
        return len(self.parts)


def group_sums(groups: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Part costs summed per group (the columns of a per-kind calibration)."""
    sums: dict[str, float] = {}
    for group, value in zip(groups, values, strict=True):
        sums[group] = sums.get(group, 0.0) + value
    return sums


def require_keys(lut: Lut, keys: Sequence[str], what: str = "this architecture") -> None:
    missing = lut.missing(dict.fromkeys(keys))
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise HnasError(
            f"LUT lacks {len(missing)} key(s) needed for {what} ({shown}); "
            "complete it with `hnas profile ... --resume` or check it with `hnas lut check`"
        )


def predict(lut: Lut, parts: Parts, energy_kind: str = "total") -> CostBreakdown:
    """Cost of a network made of ``parts`` (name, spec) on the LUT's device."""
    require_keys(lut, [spec.key for _, spec in parts])
    costs = tuple(
        PartCost(name, spec.key, lut.latency_ms(spec.key), lut.energy_mj(spec.key, energy_kind))
        for name, spec in parts
    )
    latency_sum = sum(c.latency_ms for c in costs)
    energies = [c.energy_mj for c in costs]
    energy_sum = None if any(e is None for e in energies) else sum(energies)  # type: ignore[arg-type]
    lat_cal = lut.calibration_for("latency")
    energy_cal = lut.calibration_for("energy")
    groups = [fine_group(spec) for _, spec in parts]
    latency = lat_cal.apply_groups(group_sums(groups, [c.latency_ms for c in costs]), len(costs))
    energy = None
    if energy_sum is not None:
        energy = energy_cal.apply_groups(group_sums(groups, energies), len(costs))  # type: ignore[arg-type]
    if energy_sum is not None and lut.is_estimated_energy() and latency_sum:
        # an estimate is nominal power × time: it follows the latency calibration exactly
        energy = energy_sum * latency / latency_sum
    return CostBreakdown(
        parts=costs,
        latency_sum_ms=latency_sum,
        energy_sum_mj=energy_sum,
        latency_ms=latency,
        energy_mj=energy,
        calibrated=not lat_cal.is_identity,
        energy_is_estimate=lut.is_estimated_energy(),
    )
