"""The multimodal network: one backbone per modality, feature adapters, fusion network, head.

An architecture is one JSON-serialisable dict::

    {"preset": "avmnist",
     "backbones": {"image": {"ks": [...], "e": [...], "d": [...]}, "audio": {...}},
     "fusion": {"cells": 2, "nodes": 3, "genotype": {...} | null}}

The candidate features the fusion network may read are, modality after modality in the preset's
order, each backbone's fusion candidates (see :mod:`hnas_edge.space.ofa`); an adapter brings each
one the network reads to (C, L). The head is a linear classifier on the flattened fusion output.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hnas_edge.errors import ConfigError
from hnas_edge.space.blocks import LinearLayer
from hnas_edge.space.fusion import FeatureAdapter, FusionNetwork, Genotype, random_genotype
from hnas_edge.space.modality import Parts
from hnas_edge.space.presets import SpacePreset, get_preset
from hnas_edge.space.specs import AdapterSpec

ACCOUNTINGS = ("ours", "paper")


@dataclass(frozen=True)
class Candidate:
    """One fusion candidate: which modality, which of its features, and that feature's shape."""

    modality: str
    index: int
    shape: tuple[int, ...]


def candidates(preset: SpacePreset) -> list[Candidate]:
    return [
        Candidate(modality, index, tuple(shape))
        for modality, space in preset.backbones
        for index, shape in enumerate(space.feature_shapes())
    ]


@dataclass(frozen=True)
class MultimodalArch:
    """A multimodal architecture of one preset (``genotype`` None: fusion micro-arch not searched
    yet, only its macro-architecture ``cells`` × ``nodes``)."""

    preset: str
    backbones: Mapping[str, Mapping[str, list[int]]]
    cells: int
    nodes: int
    genotype: Genotype | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "backbones": {m: dict(c) for m, c in self.backbones.items()},
            "fusion": {
                "cells": self.cells,
                "nodes": self.nodes,
                "genotype": self.genotype.to_dict() if self.genotype else None,
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> MultimodalArch:
        """Parse and validate; every problem is one line naming the field."""
        if not isinstance(data, Mapping) or not {"preset", "backbones", "fusion"} <= set(data):
            raise ConfigError(
                'an architecture is {"preset": ..., "backbones": {...}, "fusion": {...}}'
            )
        preset = get_preset(data["preset"])
        backbones = data["backbones"]
        if not isinstance(backbones, Mapping) or set(backbones) != set(preset.modalities):
            raise ConfigError(
                f"architecture backbones must be given for exactly {list(preset.modalities)}"
            )
        configs = {m: preset.backbone(m).validate_config(backbones[m]) for m in preset.modalities}
        fusion = data["fusion"]
        if not isinstance(fusion, Mapping):
            raise ConfigError('architecture "fusion" must be {"cells": C, "nodes": D, ...}')
        cells, nodes = fusion.get("cells"), fusion.get("nodes")
        if cells not in preset.cells:
            raise ConfigError(f"fusion cells = {cells!r}; allowed values: {list(preset.cells)}")
        if nodes not in preset.nodes:
            raise ConfigError(f"fusion nodes = {nodes!r}; allowed values: {list(preset.nodes)}")
        genotype = fusion.get("genotype")
        genotype = Genotype.from_dict(genotype) if genotype is not None else None
        arch = cls(preset.name, configs, int(cells), int(nodes), genotype)
        arch.check(preset)
        return arch

    def check(self, preset: SpacePreset) -> None:
        if self.genotype is None:
            return
        n_inputs = len(candidates(preset))
        shape = (len(self.genotype.cells), self.genotype.n_nodes, self.genotype.n_inputs)
        if shape != (self.cells, self.nodes, n_inputs):
            raise ConfigError(
                f"fusion genotype has {shape[0]} cells × {shape[1]} nodes over {shape[2]} inputs; "
                f"the architecture says {self.cells} × {self.nodes} over {n_inputs}"
            )


def random_arch(preset: SpacePreset, rng: random.Random | int | None = None) -> MultimodalArch:
    """A random architecture, fusion genotype included (seeded)."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    configs = {m: space.sample_config(rng) for m, space in preset.backbones}
    cells, nodes = rng.choice(preset.cells), rng.choice(preset.nodes)
    genotype = random_genotype(len(candidates(preset)), cells, nodes, rng)
    return MultimodalArch(preset.name, configs, cells, nodes, genotype)


def arch_parts(preset: SpacePreset, arch: MultimodalArch, accounting: str = "ours") -> Parts:
    """Every measured part of a whole network, for the cost model.

    ``ours`` is what :class:`MultimodalNet` runs: of each backbone the fusion network reads, the
    parts up to the deepest feature it reads (no classifier); the adapters of the features read;
    one operator per live fusion node; the shared head. ``paper`` is Harmonic-NAS's accounting:
    every searchable backbone whole with its own classifier, one operator per fusion node, no
    adapters, no head, and no fixed text backbone (the published tables do not price it; it is
    the same in every architecture).
    """
    if accounting not in ACCOUNTINGS:
        raise ConfigError(f"unknown accounting {accounting!r}; use one of {', '.join(ACCOUNTINGS)}")
    if arch.genotype is None:
        raise ConfigError("the architecture has no fusion genotype yet; search or give one")
    network = FusionNetwork(arch.genotype, preset.fusion_C, preset.fusion_L)
    fusion = network.parts(live_only=accounting == "ours")
    if accounting == "paper":
        whole = [
            (f"{modality}.{name}", spec)
            for modality, space in preset.elastic_backbones()
            for name, spec in space.parts(arch.backbones[modality])
        ]
        return whole + fusion
    parts: Parts = []
    deepest = deepest_features(preset, arch.genotype)
    for modality, space in preset.backbones:
        if modality in deepest:
            used = space.parts_upto(arch.backbones[modality], deepest[modality])
            parts += [(f"{modality}.{name}", spec) for name, spec in used]
    pool = candidates(preset)
    for i in arch.genotype.used_inputs():
        spec = AdapterSpec(pool[i].shape, preset.fusion_C, preset.fusion_L)
        parts.append((f"adapter.{pool[i].modality}{pool[i].index}", spec))
    return [*parts, *fusion, ("head", preset.head_spec())]


def deepest_features(preset: SpacePreset, genotype: Genotype) -> dict[str, int]:
    """For each modality the fusion network reads, the index of its deepest candidate read."""
    pool = candidates(preset)
    deepest: dict[str, int] = {}
    for i in genotype.used_inputs():
        modality = pool[i].modality
        deepest[modality] = max(deepest.get(modality, -1), pool[i].index)
    return deepest


class MultimodalNet(nn.Module):
    """A whole network. ``forward`` takes one tensor per modality, in the preset's order."""

    def __init__(
        self,
        preset: SpacePreset,
        arch: MultimodalArch,
        backbones: Mapping[str, nn.Module],
    ) -> None:
        super().__init__()
        if arch.genotype is None:
            raise ConfigError("the architecture has no fusion genotype yet; search or give one")
        self.preset, self.arch = preset, arch
        self.modalities = preset.modalities
        self.backbones = nn.ModuleDict({m: backbones[m] for m in self.modalities})
        self.pool = candidates(preset)
        self.used = arch.genotype.used_inputs()
        self.deepest = deepest_features(preset, arch.genotype)
        self.adapters = nn.ModuleDict(
            {
                str(i): FeatureAdapter(self.pool[i].shape, preset.fusion_C, preset.fusion_L)
                for i in self.used
            }
        )
        self.fusion = FusionNetwork(arch.genotype, preset.fusion_C, preset.fusion_L)
        self.head = LinearLayer(preset.head_spec())

    def fused_inputs(self, inputs: Mapping[str, torch.Tensor]) -> list[torch.Tensor | None]:
        """Adapted candidate features (None for those the fusion network does not read)."""
        features = {
            m: self.backbones[m].forward_features(inputs[m], upto=index)
            for m, index in self.deepest.items()
        }
        adapted: list[torch.Tensor | None] = [None] * len(self.pool)
        for i in self.used:
            candidate = self.pool[i]
            adapted[i] = self.adapters[str(i)](features[candidate.modality][candidate.index])
        return adapted

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(
            self.fusion(self.fused_inputs(dict(zip(self.modalities, inputs, strict=True))))
        )

    def parts(self) -> Parts:
        return arch_parts(self.preset, self.arch)

    def example_inputs(self, batch: int = 1) -> dict[str, torch.Tensor]:
        shapes = self.preset.input_shapes()
        return {m: torch.randn(batch, *shapes[m]) for m in self.modalities}


def build_fresh(preset: SpacePreset, arch: MultimodalArch) -> MultimodalNet:
    """A freshly initialised network of ``arch`` (e.g. to measure it end to end)."""
    backbones = {m: space.fresh(arch.backbones[m]) for m, space in preset.backbones}
    return MultimodalNet(preset, arch, backbones)
