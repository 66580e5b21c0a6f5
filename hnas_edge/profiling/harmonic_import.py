"""Import the Jetson tables the Harmonic-NAS authors published, as LUTs of our schema.

Their backbone keys join fields with ``-`` (``MBConvLayer-input:1_16_14_14-in_ch:16-out_ch:24-
mid_ch:48-expand:3-kernel:5-stride:2-use_se:0``) and carry no activation and no pooling flag;
their fusion keys read ``<op>-input:1_192_16-N:1-C:192-L:16``. Rather than guess what they leave
out, every spec of our presets is rendered in their format, and each of their keys is matched to
the spec(s) that render to it: the macro-architecture of our presets supplies the activation and
the pooling. A key that parses but matches nothing is reported, never dropped silently; a table
that does not parse is refused whole and nothing is written.

Their repository has no licence: tables are read from the user's own copies, never shipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hnas_edge.errors import HnasError
from hnas_edge.io import provenance, read_json
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.presets import PRESETS, get_preset
from hnas_edge.space.specs import (
    FUSION_OPS,
    ConvSpec,
    FusionOpSpec,
    LayerSpec,
    LinearSpec,
    MBConvSpec,
)

DEVICES = {"tx2": "Jetson TX2", "agx": "Jetson AGX Xavier"}
METHOD = "PyTorch 1.12 eager, CUDA 11.4, cuDNN 8.3.2, as published (not re-measured)"
FIELDS = {
    "ConvLayer": ("input", "in_ch", "out_ch", "kernel", "stride", "use_se", "use_bn"),
    "MBConvLayer": ("input", "in_ch", "out_ch", "mid_ch", "expand", "kernel", "stride", "use_se"),
    "LinearLayer": ("input", "in_ch", "out_ch"),
    **{op: ("input", "N", "C", "L") for op in FUSION_OPS},
}
_SHAPE = re.compile(r"^\d+(_\d+)*$")


def paper_key(spec: LayerSpec) -> str | None:
    """Our spec rendered as the key the published tables would give it (None: no such kind)."""
    if isinstance(spec, ConvSpec):
        c, h, w = spec.in_shape
        return (
            f"ConvLayer-input:1_{c}_{h}_{w}-in_ch:{c}-out_ch:{spec.out_ch}-kernel:{spec.kernel}"
            f"-stride:{spec.stride}-use_se:0-use_bn:{int(spec.use_bn)}"
        )
    if isinstance(spec, MBConvSpec):
        c, h, w = spec.in_shape
        return (
            f"MBConvLayer-input:1_{c}_{h}_{w}-in_ch:{c}-out_ch:{spec.out_ch}-mid_ch:{spec.mid_ch}"
            f"-expand:{spec.expand}-kernel:{spec.kernel}-stride:{spec.stride}"
            f"-use_se:{int(spec.use_se)}"
        )
    if isinstance(spec, LinearSpec):
        i = spec.in_features
        return f"LinearLayer-input:{i}-in_ch:{i}-out_ch:{spec.out_features}"
    if isinstance(spec, FusionOpSpec):
        return f"{spec.op}-input:1_{spec.C}_{spec.L}-N:1-C:{spec.C}-L:{spec.L}"
    return None


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """(layer type, fields) of a published key, or a one-line error naming what is wrong."""
    kind, *pieces = key.split("-")
    if kind not in FIELDS:
        raise HnasError(f"key {key!r}: unknown layer type {kind!r}")
    values = {}
    for piece in pieces:
        name, sep, value = piece.partition(":")
        if not sep:
            raise HnasError(f"key {key!r}: field {piece!r} is not name:value")
        values[name] = value
    if tuple(values) != FIELDS[kind]:
        raise HnasError(f"key {key!r}: expected fields {', '.join(FIELDS[kind])}")
    for name, value in values.items():
        ok = _SHAPE.match(value) if name == "input" else value.isdigit()
        if not ok:
            raise HnasError(f"key {key!r}: {name} = {value!r} is not a number")
    return kind, values


def _number(value: Any, key: str, name: str) -> float:
    """Their numbers are strings in backbone tables and numbers in fusion tables."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HnasError(f"key {key!r}: {name} = {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise HnasError(f"key {key!r}: {name} = {value!r} must be a non-negative number")
    return number


def _our_specs() -> dict[str, list[LayerSpec]]:
    """Paper key → our specs that render to it, over every preset."""
    table: dict[str, list[LayerSpec]] = {}
    for name in PRESETS:
        for spec in get_preset(name).all_specs():
            key = paper_key(spec)
            if key is not None and spec not in table.setdefault(key, []):
                table[key].append(spec)
    return table


@dataclass
class ImportResult:
    lut: Lut
    unmapped: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)


def _read_table(path: Path) -> Mapping[str, Any]:
    table = read_json(path, what="published table")
    if not isinstance(table, dict) or not table:
        raise HnasError(f"{path}: a published table is a non-empty JSON object of key → values")
    return table


def import_tables(backbones: Sequence[Path], fusion: Path | None, device: str) -> ImportResult:
    """Read every table (refusing the first malformed one), map keys, build the LUT in memory."""
    if device not in DEVICES:
        raise HnasError(f"--device {device!r}: the published tables are for {', '.join(DEVICES)}")
    if not backbones and fusion is None:
        raise HnasError("give at least one --backbone or --fusion table")
    tables = [*backbones, *([fusion] if fusion else [])]
    ours = _our_specs()
    entries: dict[str, dict[str, Any]] = {}
    unmapped: list[str] = []
    sources: dict[str, int] = {}
    for path in tables:
        table = _read_table(path)
        count = 0
        for key, value in table.items():
            parse_key(key)
            if not isinstance(value, Mapping) or "lat" not in value:
                raise HnasError(f"{path}: key {key!r} has no 'lat' value")
            latency = _number(value["lat"], key, "lat")
            energy = _number(value["enrg"], key, "enrg") if "enrg" in value else None
            specs = ours.get(key)
            if not specs:
                unmapped.append(key)
                continue
            for spec in specs:
                entries[spec.key] = _entry(spec, latency, energy, path.name, device, key)
                count += 1
        sources[path.name] = count
    lut = Lut(
        device={
            "name": device,
            "runtime": "pytorch-1.12-eager",
            "precision": "fp32",
            "meter": "published",
            "description": f"{DEVICES[device]}, Harmonic-NAS published tables",
        },
        settings={"batch": 1, "method": METHOD},
        provenance=provenance({"tables": [str(p) for p in tables], "device": device}),
        entries=entries,
        extra={"imported": {"from": "harmonic-nas", "sources": sources, "unmapped": unmapped}},
    )
    return ImportResult(lut, unmapped, sources)


def _entry(
    spec: LayerSpec, latency: float, energy: float | None, source: str, device: str, key: str
) -> dict[str, Any]:
    return {
        "spec": spec.to_dict(),
        "latency_ms": {"median": latency},
        "energy_mj": (
            None if energy is None else {"total": energy, "dynamic": None, "source": "published"}
        ),
        "origin": {
            "kind": "imported",
            "source": source,
            "device": device,
            "their_key": key,
            "method": METHOD,
        },
    }


def unmapped_summary(keys: Iterable[str]) -> str:
    keys = list(keys)
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
