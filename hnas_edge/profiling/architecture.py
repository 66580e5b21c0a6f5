"""What `hnas lut predict` prices: a whole multimodal architecture or one backbone config.

A config is given inline (``'{"ks": ...}'``) or as a JSON file. A whole-architecture dict (with
``preset``, ``backbones``, ``fusion``) is priced under one accounting (see
:func:`hnas_edge.space.mmnn.arch_parts`); a backbone config ``{"ks", "e", "d"}`` of one modality is
priced whole, classifier included, as the paper prices a unimodal backbone (Table 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnas_edge.errors import ConfigError, HnasError
from hnas_edge.io import parse_json, read_json
from hnas_edge.space.mmnn import MultimodalArch, arch_parts
from hnas_edge.space.presets import SpacePreset
from hnas_edge.space.specs import LayerSpec


@dataclass(frozen=True)
class PricedArchitecture:
    what: str
    accounting: str
    parts: list[tuple[str, LayerSpec]]


def read_config(text: str) -> Any:
    """Inline JSON (starting with ``{``) or the path of a JSON file."""
    if text.lstrip().startswith("{"):
        return parse_json(text, "--config")
    path = Path(text)
    if not path.is_file():
        raise HnasError(f"--config {text}: no such file; give a JSON file or inline JSON")
    return read_json(path)


def price(
    preset: SpacePreset, config: Any, modality: str | None, accounting: str
) -> PricedArchitecture:
    if isinstance(config, Mapping) and "backbones" in config:
        arch = MultimodalArch.from_dict(config)
        if arch.preset != preset.name:
            raise ConfigError(
                f"the architecture is of space {arch.preset!r}, not {preset.name!r}; "
                f"pass --space {arch.preset}"
            )
        return PricedArchitecture(
            "multimodal network", accounting, arch_parts(preset, arch, accounting)
        )
    if modality is None:
        if len(preset.modalities) != 1 and not _only_elastic(preset):
            raise ConfigError(
                f"a backbone config needs --modality (one of {', '.join(preset.modalities)})"
            )
        modality = _only_elastic(preset) or preset.modalities[0]
    space = preset.backbone(modality)
    parts = [(f"{modality}.{name}", spec) for name, spec in space.parts(config)]
    return PricedArchitecture(f"{modality} backbone", "whole backbone with classifier", parts)


def _only_elastic(preset: SpacePreset) -> str | None:
    """The modality of the one searchable backbone, when there is exactly one (memes, mmimdb)."""
    elastic = [m for m, _ in preset.elastic_backbones()]
    return elastic[0] if len(elastic) == 1 else None
