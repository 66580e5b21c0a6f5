"""How big a search space is: configurations, parameter and MAC ranges per backbone."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from hnas_edge.space.modality import ModalitySpace
from hnas_edge.space.presets import SpacePreset


@dataclass(frozen=True)
class BackboneSummary:
    """One modality's backbone space. Ranges are (smallest subnet, largest subnet)."""

    modality: str
    kind: str
    in_shape: tuple[int, ...]
    num_configs: int
    params: tuple[int, int]
    macs: tuple[int, int]
    feature_shapes: tuple[tuple[int, ...], ...]


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize_backbone(modality: str, space: ModalitySpace) -> BackboneSummary:
    """Sizes of one backbone space; parameters are counted on freshly built extreme subnets."""
    ends = (space.min_config(), space.max_config())
    params = [count_params(space.fresh(c)) for c in ends]
    macs = [sum(spec.macs() for _, spec in space.parts(c)) for c in ends]
    return BackboneSummary(
        modality=modality,
        kind=space.label,
        in_shape=tuple(space.in_shape),
        num_configs=space.num_configs(),
        params=(params[0], params[1]),
        macs=(macs[0], macs[1]),
        feature_shapes=tuple(tuple(s) for s in space.feature_shapes()),
    )


def summarize_preset(preset: SpacePreset) -> list[BackboneSummary]:
    return [summarize_backbone(modality, space) for modality, space in preset.backbones]
