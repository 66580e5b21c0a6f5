"""The latency/energy lookup table (LUT): schema, strict loading, atomic saving, merging.

One JSON file per device, precision and batch size (docs/internals.md). Entries are keyed by the
canonical key of a layer spec (:mod:`hnas_edge.space.specs`). Every entry records how its figures
were obtained: measured by us (``origin.kind == "measured"``, with the meter's source, and
``energy_mj.estimate`` true where energy is a nominal-power estimate) or imported from published
tables (``origin.kind == "imported"``).

A LUT is measured at one batch size, ``settings.batch`` (a LUT without it, as every LUT before
batches, is batch 1). Its figures are per call, that is per batch of that many samples: latency
and energy alike, so sums, calibration and estimated energy (power × latency) agree; divide by
the batch for a figure per sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hnas_edge.checks import Fields, differences, shown
from hnas_edge.errors import ConfigError, HnasError
from hnas_edge.io import atomic_write_json, read_json
from hnas_edge.profiling.device import DeviceProfile

SCHEMA = "hnas-lut/1"
#: The batch of a LUT that records none (every LUT made before batch sizes were recorded).
DEFAULT_BATCH = 1


@dataclass(frozen=True)
class Calibration:
    """Maps a network's part costs onto a whole-network cost.

    Plain (``grouping`` None): ``a·sum + c·n_parts + b``. The ``c·n_parts`` term absorbs the
    fixed per-call overhead that every separately measured part carries and a whole network pays
    only once (~8–9 µs per onnxruntime call on a 2-core CPU).

    Per part kind (``grouping`` ``"kind"`` or ``"fine"``, :mod:`hnas_edge.profiling.transfer`'s
    groupings): ``Σ_g scales[g]·sum_g + c·n_parts + b``, one scale per group of parts (``a`` is
    unused and stays 1). ``hnas lut validate`` stores it where it predicts the held-out networks
    better than the plain one; the entries stay as measured.
    """

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    fitted_on: int = 0
    grouping: str | None = None
    scales: dict[str, float] = field(default_factory=dict)

    def apply(self, total: float, n_parts: int) -> float:
        """The plain model on a raw sum (a per-kind model needs :meth:`apply_groups`)."""
        return self.a * total + self.c * n_parts + self.b

    def apply_groups(self, sums: Mapping[str, float], n_parts: int) -> float:
        """The cost of a network from its part costs summed per fine group
        (:func:`hnas_edge.profiling.transfer.fine_group`): either model."""
        if self.grouping is None:
            return self.apply(sum(sums.values()), n_parts)
        from hnas_edge.profiling.transfer import TransferModel

        model = TransferModel(self.grouping, dict(self.scales), self.c, self.b, self.fitted_on)
        return model.predict(sums, n_parts)

    def scaled(self, factor: float) -> Calibration:
        """The same model in another unit (ms → mJ at a nominal power): offsets times
        ``factor``, slopes unchanged."""
        return Calibration(
            self.a, self.b * factor, self.c * factor, self.fitted_on, self.grouping, self.scales
        )

    @property
    def is_identity(self) -> bool:
        return self.fitted_on == 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"a": self.a, "b": self.b, "c": self.c, "fitted_on": self.fitted_on}
        if self.grouping is not None:
            data.update(grouping=self.grouping, scales=dict(self.scales))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        keys = ("a", "b", "c", "fitted_on", "grouping")
        fields_ = {k: data[k] for k in keys if k in data}
        return cls(**fields_, scales=dict(data.get("scales") or {}))


CALIBRATED = ("latency", "energy")
#: Groupings a per-kind calibration may use (those of :mod:`hnas_edge.profiling.transfer`).
CALIBRATION_GROUPINGS = ("kind", "fine")
ORIGINS = ("measured", "imported", "transferred")
_FIX = "re-create it with `hnas profile` or fix the file"


def _bad(path: str | Path, what: str) -> HnasError:
    return HnasError(f"LUT {path}: {what}; {_FIX}")


def check_lut_dict(data: Any, path: str | Path) -> None:
    """The LUT schema: every field anything reads, with its type and range; one line otherwise.

    Latencies are finite and > 0 (>= 0 for imported tables, which publish zeros, and tables
    transferred from them), energies
    finite and >= 0, the calibration finite with a slope > 0; names are safe in file names;
    metadata fields that reports read (``origin``, ``device.nodes``, ``provenance``, ...) have
    the types they are read as."""
    f = Fields(f"LUT {path}", _FIX)
    if not isinstance(data, dict):
        raise _bad(path, "top level is not a JSON object")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise HnasError(
            f"LUT {path}: schema is {shown(schema)}, expected {SCHEMA!r}; "
            "tables published elsewhere are converted with `hnas lut import`"
        )
    device = f.obj(f.get(data, "device", "device", "an object with name and runtime"), "device")
    f.name(f.get(device, "name", "device.name", "the device's name"), "device.name")
    for key in ("runtime", "precision", "meter", "description"):
        f.optional_text(device.get(key), f"device.{key}")
    for key in ("profile", "state", "runtime_info"):
        f.optional_obj(device.get(key), f"device.{key}")
    nodes = f.optional_obj(device.get("nodes"), "device.nodes")
    f.each(nodes, "device.nodes", lambda node, where: _check_node(f, node, where))
    for key in ("settings", "provenance", "validation", "load", "transfer"):
        f.optional_obj(data.get(key), key)
    drift = f.optional_obj(data.get("drift"), "drift")
    f.optional_number(drift.get("baseline_ms"), "drift.baseline_ms", gt=0)
    if data.get("pinned_core") is not None:
        f.integer(data["pinned_core"], "pinned_core", ge=0)
    batch = f.optional_obj(data.get("settings"), "settings").get("batch")
    if batch is not None:
        f.integer(batch, "settings.batch", ge=1)
    f.optional_text(f.optional_obj(data.get("provenance"), "provenance").get("created"),
                    "provenance.created")  # fmt: skip
    f.optional_text(data.get("shard"), "shard")
    if data.get("imported") is not None:
        f.text(f.obj(data["imported"], "imported").get("from"), "imported.from")
    calibration = f.optional_obj(data.get("calibration"), "calibration")
    for metric, fit in calibration.items():
        where = f"calibration.{metric}"
        f.choice(metric, "calibration", CALIBRATED)
        f.known(f.obj(fit, where), ("a", "b", "c", "fitted_on", "grouping", "scales"), where)
        f.number(fit.get("a", 1.0), f"{where}.a", gt=0)
        f.number(fit.get("b", 0.0), f"{where}.b")
        f.number(fit.get("c", 0.0), f"{where}.c")
        f.integer(fit.get("fitted_on", 0), f"{where}.fitted_on", ge=0)
        _check_grouped(f, fit, where)
    entries = f.obj(f.get(data, "entries", "entries", "an object of key → entry"), "entries")
    for key, entry in entries.items():
        _check_entry(f, key, entry)


def _check_grouped(f: Fields, fit: Mapping[str, Any], where: str) -> None:
    """A per-kind calibration: a known grouping with one finite scale ≥ 0 per group, or
    neither (the plain model)."""
    grouping, scales = fit.get("grouping"), fit.get("scales")
    if grouping is None and scales is None:
        return
    if grouping is None:
        raise f.missing(f"{where}.grouping", f"one of {', '.join(CALIBRATION_GROUPINGS)}")
    f.choice(grouping, f"{where}.grouping", CALIBRATION_GROUPINGS)
    if scales is None:
        raise f.missing(f"{where}.scales", "an object of group → scale")
    for group, scale in f.obj(scales, f"{where}.scales").items():
        f.number(scale, f"{where}.scales[{group!r}]", ge=0)


def _check_node(f: Fields, node: Any, where: str) -> None:
    node = f.obj(node, where)
    f.text(node.get("hostname"), f"{where}.hostname")
    f.optional_text(node.get("meter"), f"{where}.meter")
    f.optional_obj(node.get("runtime_info"), f"{where}.runtime_info")


def _check_entry(f: Fields, key: str, entry: Any) -> None:
    where = f"entries[{key!r}]"
    entry = f.obj(entry, where)
    origin = f.optional_obj(entry.get("origin"), f"{where}.origin")
    kind = f.choice(origin.get("kind", "measured"), f"{where}.origin.kind", ORIGINS)
    f.optional_text(origin.get("source"), f"{where}.origin.source")
    if origin.get("node") is not None:
        _check_node(f, origin["node"], f"{where}.origin.node")
    latency = f.obj(entry.get("latency_ms"), f"{where}.latency_ms")
    if "median" not in latency:
        raise f.missing(f"{where}.latency_ms.median", "the median latency in ms")
    # a published zero stays zero when it is scaled to another device
    floor = {"gt": 0.0} if kind == "measured" else {"ge": 0.0}
    f.number(latency["median"], f"{where}.latency_ms.median", **floor)
    for stat in ("p10", "p90", "mean", "std", "robust_cv"):
        f.optional_number(latency.get(stat), f"{where}.latency_ms.{stat}", ge=0)
    if latency.get("n") is not None:
        f.integer(latency["n"], f"{where}.latency_ms.n", ge=1)
    drift = f.optional_obj(entry.get("drift"), f"{where}.drift")
    f.optional_number(drift.get("factor"), f"{where}.drift.factor", gt=0)
    energy = entry.get("energy_mj")
    if energy is not None:
        energy = f.obj(energy, f"{where}.energy_mj")
        if "total" not in energy:
            raise f.missing(f"{where}.energy_mj.total", "the energy in mJ")
        f.number(energy["total"], f"{where}.energy_mj.total", ge=0)
        f.optional_number(energy.get("dynamic"), f"{where}.energy_mj.dynamic")
        f.optional_text(energy.get("source"), f"{where}.energy_mj.source")
        if energy.get("estimate") is not None:
            f.flag(energy["estimate"], f"{where}.energy_mj.estimate")


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

    @property
    def batch(self) -> int:
        """Samples per call its figures were measured at (``settings.batch``; 1 if unrecorded)."""
        return int(self.settings.get("batch") or DEFAULT_BATCH)

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
        check_lut_dict(data, path)
        calibration = {
            k: Calibration.from_dict(v) for k, v in (data.get("calibration") or {}).items()
        }
        known = {"schema", "device", "settings", "provenance", "calibration", "entries"}
        return cls(
            device=data["device"],
            settings=data.get("settings") or {},
            provenance=data.get("provenance") or {},
            calibration=calibration,
            entries=data["entries"],
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def load(cls, path: str | Path) -> Lut:
        return cls.from_dict(read_json(path, what="LUT"), path)


def target(lut: Lut) -> tuple[Any, ...]:
    """The device a LUT measures: its name, runtime and precision."""
    device = lut.device
    return (device.get("name"), device.get("runtime"), device.get("precision"))


def identity(lut: Lut) -> tuple[Any, ...]:
    """What must agree for two LUTs to describe the same thing: the target and the batch."""
    return (*target(lut), lut.batch)


def check_target(
    lut: Lut,
    path: str | Path,
    device: DeviceProfile,
    *,
    redo: str,
    alternative: str = "",
    batch: int | None = None,
    adds_entries: bool = True,
) -> None:
    """The one check that what ``device`` measures belongs with ``lut`` (read from ``path``),
    for a resumed profile, a fleet and `hnas lut validate` alike: the same target (device name,
    runtime, precision), the same ``batch`` (None: the caller measures at the LUT's) and the
    same device profile settings (threads, timing, power, meter, ...). Measurements that join
    the LUT's entries (``adds_entries``) need the LUT to record the profile it was made with;
    a calibration is fitted to a LUT that records none (imported tables) too. One line
    otherwise: ``redo`` it with the right device, or ``alternative``."""
    tail = f" or {alternative}" if alternative else ""
    if batch is not None and lut.batch != batch:
        raise ConfigError(
            f"{path} was profiled at batch {lut.batch}, not --batch {batch}; {redo} with "
            f"--batch {lut.batch}{tail}"
        )
    expected = (device.name, device.runtime, device.precision)
    if target(lut) != expected:
        raise ConfigError(
            f"{path} was profiled for {target(lut)}, not {expected}; {redo} with the same "
            f"--device{tail}"
        )
    recorded = lut.device.get("profile")
    if recorded is None and not adds_entries:
        return
    # figures measured with other threads, timing or power do not go with the LUT's
    changed = differences(DeviceProfile.with_defaults(recorded or {}), device.to_dict())
    if changed:
        raise ConfigError(
            f"{path} was profiled with other device settings ({'; '.join(changed)}); {redo} "
            f"with the device file it was made with{tail}"
        )


def merge(first: Lut, second: Lut) -> tuple[Lut, list[str]]:
    """Join two LUTs of the same target (e.g. shards). Returns the merged LUT and the keys both
    held; for those, the entry with the lower coefficient of variation is kept."""
    if first.batch != second.batch:
        raise HnasError(
            f"cannot merge a LUT at batch {first.batch} with one at batch {second.batch}: a LUT "
            "is one batch size; merge only shards profiled with the same --batch"
        )
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
