"""What `hnas lut show` tells: the target, how figures were obtained, and their spread."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hnas_edge.profiling.lut import Lut


@dataclass(frozen=True)
class KindSummary:
    kind: str
    entries: int
    latency_min_ms: float
    latency_max_ms: float
    median_cv: float | None


@dataclass(frozen=True)
class DriftSummary:
    """The drift reference timed while the LUT was made: its baseline and how far its timings
    strayed from it (entries were corrected by those factors; docs/luts.md)."""

    reference: str
    baseline_ms: float
    timings: int
    slowest: float  # the largest timing / baseline
    fastest: float  # the smallest timing / baseline


@dataclass(frozen=True)
class LutSummary:
    device: dict[str, Any]
    settings: dict[str, Any]
    entries: int
    kinds: tuple[KindSummary, ...]
    origins: dict[str, int]
    energy_sources: dict[str, int]
    energy_estimated: int
    cv_quantiles: dict[str, float]
    calibration: dict[str, dict[str, float]]
    created: str | None
    runtime_version: str = ""
    meter: str | None = None
    nodes: dict[str, int] = field(default_factory=dict)  # entries per host of a fleet
    transfer: dict[str, Any] | None = None  # `hnas lut transfer`'s record: source, model, fidelity
    batch: int = 1  # samples per call; every figure is per batch
    drift: DriftSummary | None = None
    #: entries that record what the quiet-machine gate dropped (0 before it existed), the sum
    gated: int = 0
    dropped_s: float = 0.0


def _kind(key: str) -> str:
    return key.split("|", 1)[0]


def _cv(entry: dict[str, Any]) -> float | None:
    """The spread retries are judged on (robust CoV) where recorded, else std/median (imported
    tables). A few stalls inflate std/median on sub-0.1 ms parts without moving the median."""
    latency = entry["latency_ms"]
    if latency.get("robust_cv") is not None:
        return latency["robust_cv"]
    if latency.get("std") is None or not latency.get("median"):
        return None
    return latency["std"] / latency["median"]


def _origin(entry: dict[str, Any]) -> str:
    origin = entry.get("origin") or {}
    kind = origin.get("kind", "measured")
    source = origin.get("source")
    return f"{kind} ({source})" if source else kind


def _hosts(device: dict[str, Any]) -> list[dict[str, Any]]:
    """Descriptions of the machines that measured: the header's (one machine) and each node's
    of a fleet (:mod:`hnas_edge.profiling.fleet`)."""
    own = [device] if "meter" in device else []
    return own + list((device.get("nodes") or {}).values())


def _distinct(values: Any) -> str:
    """Distinct values joined with "/", so that a mixed fleet shows."""
    return "/".join(dict.fromkeys(str(v) for v in values if v))


def _per_node(lut: Lut) -> dict[str, int]:
    nodes = ((e.get("origin") or {}).get("node") for e in lut.entries.values())
    return dict(Counter(node["hostname"] for node in nodes if node))


def _drift(record: Any) -> DriftSummary | None:
    """The summary of a LUT's ``drift`` record; None without one (or without timings)."""
    if not isinstance(record, dict) or not record.get("baseline_ms") or not record.get("times"):
        return None
    baseline = float(record["baseline_ms"])
    factors = [t["latency_ms"] / baseline for t in record["times"]]
    return DriftSummary(
        str(record.get("reference")), baseline, len(factors), max(factors), min(factors)
    )


def summarize(lut: Lut) -> LutSummary:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for key, entry in lut.entries.items():
        by_kind.setdefault(_kind(key), []).append(entry)
    kinds = []
    for kind, entries in sorted(by_kind.items()):
        medians = [e["latency_ms"]["median"] for e in entries]
        cvs = [c for c in map(_cv, entries) if c is not None]
        kinds.append(
            KindSummary(
                kind=kind,
                entries=len(entries),
                latency_min_ms=min(medians),
                latency_max_ms=max(medians),
                median_cv=float(np.median(cvs)) if cvs else None,
            )
        )
    all_cvs = [c for c in map(_cv, lut.entries.values()) if c is not None]
    energies = [e.get("energy_mj") or {} for e in lut.entries.values()]
    return LutSummary(
        device=lut.device,
        settings=lut.settings,
        entries=len(lut),
        kinds=tuple(kinds),
        origins=dict(Counter(map(_origin, lut.entries.values()))),
        energy_sources=dict(Counter(e.get("source", "none") for e in energies)),
        energy_estimated=sum(bool(e.get("estimate")) for e in energies),
        cv_quantiles=(
            {q: float(np.quantile(all_cvs, v)) for q, v in (("p50", 0.5), ("p90", 0.9), ("max", 1))}
            if all_cvs
            else {}
        ),
        calibration={k: v.to_dict() for k, v in lut.calibration.items()},
        created=lut.provenance.get("created"),
        runtime_version=_distinct(
            (h.get("runtime_info") or {}).get("version") for h in _hosts(lut.device)
        ),
        meter=_distinct(h.get("meter") for h in _hosts(lut.device)) or None,
        nodes=_per_node(lut),
        transfer=lut.extra.get("transfer"),
        batch=lut.batch,
        drift=_drift(lut.extra.get("drift")),
        gated=sum("dropped_s" in e for e in lut.entries.values()),
        dropped_s=sum(e.get("dropped_s", 0.0) for e in lut.entries.values()),
    )
