"""Which keys a search space needs that a LUT does not hold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hnas_edge.profiling.lut import Lut
from hnas_edge.space.presets import SpacePreset


@dataclass(frozen=True)
class Coverage:
    space: str
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


def coverage(lut: Lut, preset: SpacePreset) -> Coverage:
    keys = [spec.key for spec in preset.all_specs()]
    return Coverage(preset.name, len(keys), tuple(lut.missing(keys)))
