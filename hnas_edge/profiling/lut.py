"""The latency/energy lookup table (LUT): schema, strict loading, atomic saving, merging.

One JSON file per device and precision (docs/internals.md). Entries are keyed by the canonical
key of a layer spec (:mod:`hnas_edge.space.specs`). Every entry records how its figures were
obtained: measured by us (``origin.kind == "measured"``, with the meter's source, and
``energy_mj.estimate`` true where energy is a nominal-power estimate) or imported from published
tables (``origin.kind == "imported"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hnas_edge.errors import HnasError
from hnas_edge.io import atomic_write_json, read_json

SCHEMA = "hnas-lut/1"
LATENCY_STATS = ("median", "p10", "p90", "mean", "std", "n")


@dataclass(frozen=True)
class Calibration:
    """Maps a sum of part costs onto a whole-network cost: ``a·sum + c·n_parts + b``.

    The ``c·n_parts`` term absorbs the fixed per-call overhead that every separately measured part
    carries and a whole network pays only once (~8–9 µs per onnxruntime call on a 2-core CPU).
    """

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    fitted_on: int = 0

    def apply(self, total: float, n_parts: int) -> float:
        return self.a * total + self.c * n_parts + self.b

    @property
    def is_identity(self) -> bool:
        return self.fitted_on == 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(**{k: data[k] for k in ("a", "b", "c", "fitted_on") if k in data})


def _bad(path: str | Path, what: str) -> HnasError:
    return HnasError(f"LUT {path}: {what}; re-create it with `hnas profile` or fix the file")


def _check_number(value: Any, path: str | Path, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(path, f"{where} must be a finite number, got {value!r}")
    if value < minimum:
        raise _bad(path, f"{where} must be >= {minimum}, got {value!r}")
    return float(value)


def _check_entry(key: str, entry: Any, path: str | Path) -> None:
    if not isinstance(entry, dict):
        raise _bad(path, f"entry {key!r} is not an object")
    latency = entry.get("latency_ms")
    if not isinstance(latency, dict) or "median" not in latency:
        raise _bad(path, f"entry {key!r} has no latency_ms.median")
    for stat in LATENCY_STATS:
        if stat in latency:
            _check_number(latency[stat], path, f"entry {key!r} latency_ms.{stat}")
    energy = entry.get("energy_mj")
    if energy is not None:
        if not isinstance(energy, dict) or "total" not in energy:
            raise _bad(path, f"entry {key!r} energy_mj has no total")
        _check_number(energy["total"], path, f"entry {key!r} energy_mj.total")
        if energy.get("dynamic") is not None:
            _check_number(
                energy["dynamic"], path, f"entry {key!r} energy_mj.dynamic", minimum=-math.inf
            )


class Lut:
    """A loaded LUT: header (device, settings, provenance, calibration) plus entries by key."""

    def __init__(
        self,
        device: dict[str, Any],
        settings: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        calibration: Mapping[str, Calibration] | None = None,
        entries: dict[str, dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.device = device
        self.settings = settings or {}
        self.provenance = provenance or {}
        self.calibration = dict(calibration or {})
        self.entries: dict[str, dict[str, Any]] = entries or {}
        self.extra = extra or {}

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def calibration_for(self, metric: str) -> Calibration:
        return self.calibration.get(metric, Calibration())

    def latency_ms(self, key: str) -> float:
        return float(self.entries[key]["latency_ms"]["median"])

    def energy_mj(self, key: str, kind: str = "total") -> float | None:
        energy = self.entries[key].get("energy_mj")
        if not energy or energy.get(kind) is None:
            return None
        return float(energy[kind])

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def is_estimated_energy(self) -> bool:
        return any((e.get("energy_mj") or {}).get("estimate") for e in self.entries.values())

    # --- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "device": self.device,
            "settings": self.settings,
            "provenance": self.provenance,
            "calibration": {k: v.to_dict() for k, v in self.calibration.items()},
            **self.extra,
            "entries": self.entries,
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically: the file on disk is valid JSON at every moment."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "<memory>") -> Lut:
        if not isinstance(data, dict):
            raise _bad(path, "top level is not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise HnasError(
                f"LUT {path}: schema is {schema!r}, expected {SCHEMA!r}; "
                "tables published elsewhere are converted with `hnas lut import`"
            )
        device = data.get("device")
        if not isinstance(device, dict) or not device.get("name"):
            raise _bad(path, "device.name is missing")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise _bad(path, "entries is missing or not an object")
        for key, entry in entries.items():
            _check_entry(key, entry, path)
        calibration_raw = data.get("calibration") or {}
        try:
            calibration = {k: Calibration.from_dict(v) for k, v in calibration_raw.items()}
        except (TypeError, AttributeError):
            raise _bad(path, "calibration is malformed") from None
        known = {"schema", "device", "settings", "provenance", "calibration", "entries"}
        return cls(
            device=device,
            settings=data.get("settings") or {},
            provenance=data.get("provenance") or {},
            calibration=calibration,
            entries=entries,
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def load(cls, path: str | Path) -> Lut:
        return cls.from_dict(read_json(path, what="LUT"), path)


def identity(lut: Lut) -> tuple[Any, ...]:
    """What must agree for two LUTs to describe the same target: device, runtime, precision."""
    device = lut.device
    return (device.get("name"), device.get("runtime"), device.get("precision"))


def merge(first: Lut, second: Lut) -> tuple[Lut, list[str]]:
    """Join two LUTs of the same target (e.g. shards). Returns the merged LUT and the keys both
    held; for those, the entry with the lower coefficient of variation is kept."""
    if identity(first) != identity(second):
        raise HnasError(
            f"cannot merge LUTs of different targets {identity(first)} and {identity(second)}; "
            "merge only shards profiled on the same device, runtime and precision"
        )
    entries = dict(first.entries)
    both = []
    for key, entry in second.entries.items():
        if key in entries:
            both.append(key)
            if _cv(entry) < _cv(entries[key]):
                entries[key] = entry
        else:
            entries[key] = entry
    merged = Lut(
        device=first.device,
        settings=first.settings,
        provenance={"merged_from": [first.provenance, second.provenance]},
        calibration={},
        entries=dict(sorted(entries.items())),
        extra={k: v for k, v in first.extra.items() if k != "shard"},
    )
    return merged, both


def _cv(entry: Mapping[str, Any]) -> float:
    latency = entry["latency_ms"]
    median = latency.get("median") or 0.0
    std = latency.get("std")
    if std is None or median <= 0:
        return math.inf
    return std / median
