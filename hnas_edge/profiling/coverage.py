"""Which keys a search space needs that a LUT does not hold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hnas_edge.errors import HnasError
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.mmnn import ACCOUNTINGS
from hnas_edge.space.presets import SpacePreset


def default_accounting(lut: Lut) -> str:
    """Tables imported from Harmonic-NAS price networks as the paper did; our LUTs as we do."""
    return "paper" if (lut.extra.get("imported") or {}).get("from") == "harmonic-nas" else "ours"


@dataclass(frozen=True)
class Coverage:
    space: str
    accounting: str
    needed: int
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def share(self) -> float:
        return 1.0 - len(self.missing) / self.needed if self.needed else 1.0

    def missing_by_kind(self) -> dict[str, int]:
        return dict(Counter(key.split("|", 1)[0] for key in self.missing))


def coverage(lut: Lut, preset: SpacePreset, accounting: str | None = None) -> Coverage:
    accounting = accounting or default_accounting(lut)
    if accounting not in ACCOUNTINGS:
        raise HnasError(f"unknown accounting {accounting!r}; use one of {', '.join(ACCOUNTINGS)}")
    keys = [spec.key for spec in preset.required_specs(accounting)]
    return Coverage(preset.name, accounting, len(keys), tuple(lut.missing(keys)))
