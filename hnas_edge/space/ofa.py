"""The elastic once-for-all MobileNetV3 backbone: a search space as data, a supernet, its subnets.

A backbone is: stem convolution → fixed first block → elastic stages → final 1×1 expand with global
pooling → feature-mix 1×1 (no batch norm) → classifier. Each stage has ``max_depth`` block slots;
a config chooses each slot's kernel and expand ratio and each stage's depth, in once-for-all's
encoding ``{"ks": [...], "e": [...], "d": [...]}`` (``ks``/``e``: one entry per slot, stage after
stage, entries of inactive slots ignored; ``d``: one entry per stage).

Fusion candidates (what the multimodal network may fuse) are the first block's output, each stage's
output and the embedding after the feature-mix layer; their shapes do not depend on the config.

:class:`BackboneSpace` implements :class:`~hnas_edge.space.modality.ModalitySpace` (elastic), and
:class:`OFASupernet` :class:`~hnas_edge.space.modality.ModalityNetwork`.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from hnas_edge.errors import ConfigError
from hnas_edge.space.blocks import ConvLayer, LinearLayer, MBConvLayer
from hnas_edge.space.dynamic import DynamicMBConv
from hnas_edge.space.modality import Config, Parts
from hnas_edge.space.specs import ACTIVATIONS, ConvSpec, LayerSpec, LinearSpec, MBConvSpec, conv_out


@dataclass(frozen=True)
class StageSpace:
    """One elastic stage: output width, stride of its first block, slots, SE and activation."""

    width: int
    stride: int
    max_depth: int = 4
    use_se: bool = False
    act: str = "relu"


@dataclass(frozen=True)
class BackboneSpace:
    """The macro-architecture of one backbone and the choices of its elastic part (plain data)."""

    elastic: ClassVar[bool] = True
    label: ClassVar[str] = "once-for-all MobileNetV3"

    in_shape: tuple[int, int, int]
    stem_ch: int
    first_ch: int
    stages: tuple[StageSpace, ...]
    final_ch: int
    mix_ch: int
    n_classes: int
    stem_act: str = "h_swish"
    first_act: str = "relu"
    head_act: str = "h_swish"
    ks_choices: tuple[int, ...] = (3, 5, 7)
    e_choices: tuple[int, ...] = (3, 4, 6)
    d_choices: tuple[int, ...] = (2, 3, 4)

    def __post_init__(self) -> None:
        for act in (self.stem_act, self.first_act, self.head_act, *(s.act for s in self.stages)):
            if act not in ACTIVATIONS:
                raise ConfigError(
                    f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}"
                )
        if any(k % 2 == 0 for k in self.ks_choices):
            raise ConfigError(f"kernel choices must be odd, got {list(self.ks_choices)}")

    @property
    def n_slots(self) -> int:
        return sum(stage.max_depth for stage in self.stages)

    def depths(self, stage: StageSpace) -> tuple[int, ...]:
        return tuple(d for d in self.d_choices if d <= stage.max_depth)

    def gene_choices(self, gene: str, index: int) -> tuple[int, ...]:
        """The values of ``ks[index]``, ``e[index]`` or ``d[index]`` (stage ``index``'s depth)."""
        if gene == "ks":
            return self.ks_choices
        if gene == "e":
            return self.e_choices
        return self.depths(self.stages[index])

    def num_configs(self) -> int:
        """Distinct subnets (settings of inactive slots are not counted twice)."""
        per_layer = len(self.ks_choices) * len(self.e_choices)
        return math.prod(sum(per_layer**d for d in self.depths(s)) for s in self.stages)

    def stem_spec(self) -> ConvSpec:
        return ConvSpec(self.in_shape, self.stem_ch, 3, 2, True, self.stem_act)

    def first_spec(self) -> MBConvSpec:
        return MBConvSpec(
            self.stem_spec().output_shape(), self.first_ch, 1, 3, 1, False, self.first_act
        )

    def stage_input_shapes(self) -> list[tuple[int, int, int]]:
        """Input shape of each stage (it does not depend on the config)."""
        c, h, w = self.first_spec().output_shape()
        shapes = []
        for stage in self.stages:
            shapes.append((c, h, w))
            c, h, w = stage.width, conv_out(h, 3, stage.stride), conv_out(w, 3, stage.stride)
        shapes.append((c, h, w))
        return shapes

    def block_spec(self, stage_index: int, position: int, kernel: int, expand: int) -> MBConvSpec:
        """The spec of block ``position`` (0-based) of a stage at a given kernel and expand."""
        stage = self.stages[stage_index]
        c, h, w = self.stage_input_shapes()[stage_index]
        if position > 0:
            c, h, w = stage.width, conv_out(h, 3, stage.stride), conv_out(w, 3, stage.stride)
        stride = stage.stride if position == 0 else 1
        return MBConvSpec((c, h, w), stage.width, expand, kernel, stride, stage.use_se, stage.act)

    def head_specs(self) -> Parts:
        last = self.stage_input_shapes()[-1]
        return [
            ("final_expand", ConvSpec(last, self.final_ch, 1, 1, True, self.head_act, pool=True)),
            (
                "feature_mix",
                ConvSpec((self.final_ch, 1, 1), self.mix_ch, 1, 1, False, self.head_act),
            ),
            ("classifier", LinearSpec(self.mix_ch, self.n_classes)),
        ]

    def feature_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the fusion candidates: first block, each stage, embedding."""
        return [
            self.first_spec().output_shape(),
            *self.stage_input_shapes()[1:],
            (self.mix_ch,),
        ]

    # --- configs -------------------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> Config:
        """``config`` as plain lists, or one line naming the wrong field and the allowed values."""
        if not isinstance(config, Mapping):
            raise ConfigError(
                'a backbone config is an object {"ks": [...], "e": [...], "d": [...]}'
            )
        extra = sorted(set(config) - {"ks", "e", "d"})
        if extra:
            raise ConfigError(f"unknown config field(s) {extra}; a backbone config has ks, e, d")
        lengths = {"ks": self.n_slots, "e": self.n_slots, "d": len(self.stages)}
        clean: Config = {}
        for name, length in lengths.items():
            if name not in config:
                raise ConfigError(f"config has no {name!r}; give a list of {length} values")
            values = config[name]
            if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != length:
                raise ConfigError(
                    f"config {name!r} must be a list of {length} values for this backbone"
                )
            for i, value in enumerate(values):
                ok = self.gene_choices(name, i)
                if isinstance(value, bool) or value not in ok:
                    raise ConfigError(
                        f"config {name}[{i}] = {value!r}; allowed values: "
                        + ", ".join(map(str, ok))
                    )
            clean[name] = [int(v) for v in values]
        return clean

    def sample_config(self, rng: random.Random | int | None = None) -> Config:
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return {
            "ks": [rng.choice(self.ks_choices) for _ in range(self.n_slots)],
            "e": [rng.choice(self.e_choices) for _ in range(self.n_slots)],
            "d": [rng.choice(self.depths(s)) for s in self.stages],
        }

    def max_config(self) -> Config:
        return {
            "ks": [max(self.ks_choices)] * self.n_slots,
            "e": [max(self.e_choices)] * self.n_slots,
            "d": [max(self.depths(s)) for s in self.stages],
        }

    def min_config(self) -> Config:
        return {
            "ks": [min(self.ks_choices)] * self.n_slots,
            "e": [min(self.e_choices)] * self.n_slots,
            "d": [min(self.depths(s)) for s in self.stages],
        }

    def active_blocks(self, config: Config) -> list[tuple[int, int, int, int]]:
        """(stage, position, kernel, expand) of every active block, in order."""
        blocks, slot = [], 0
        for s, stage in enumerate(self.stages):
            for position in range(stage.max_depth):
                if position < config["d"][s]:
                    blocks.append((s, position, config["ks"][slot], config["e"][slot]))
                slot += 1
        return blocks

    def parts(self, config: Mapping[str, Any]) -> Parts:
        """Every measured part of the subnet ``config``, named, in execution order."""
        config = self.validate_config(config)
        body = [
            (f"stage{s + 1}.block{p + 1}", self.block_spec(s, p, k, e))
            for s, p, k, e in self.active_blocks(config)
        ]
        return [("stem", self.stem_spec()), ("first", self.first_spec()), *body, *self.head_specs()]

    def parts_upto(self, config: Mapping[str, Any], feature: int) -> Parts:
        """The parts that run to produce fusion candidate ``feature`` (no classifier)."""
        parts = self.parts(config)
        if feature >= len(self.stages) + 1:
            return parts[:-1]
        keep = {"stem", "first", *(f"stage{s + 1}" for s in range(feature))}
        return [(name, spec) for name, spec in parts if name.split(".")[0] in keep]

    def all_specs(self) -> list[LayerSpec]:
        """Every part any subnet of this space can contain (what a LUT must hold)."""
        specs: list[LayerSpec] = [self.stem_spec(), self.first_spec()]
        for s, stage in enumerate(self.stages):
            for position in range(stage.max_depth):
                specs += [
                    self.block_spec(s, position, k, e)
                    for k in self.ks_choices
                    for e in self.e_choices
                ]
        specs += [spec for _, spec in self.head_specs()]
        return list(dict.fromkeys(specs))

    def supernet(self) -> OFASupernet:
        return OFASupernet(self)

    def fresh(self, config: Mapping[str, Any]) -> StaticBackbone:
        return StaticBackbone.fresh(self, config)


def _stage_ends(depths: Sequence[int]) -> list[int]:
    """Index, in the list of active blocks, just past each stage."""
    ends, total = [], 0
    for d in depths:
        total += d
        ends.append(total)
    return ends


class _Backbone(nn.Module):
    """What the supernet and its static subnets share: the fixed stem, first block and head."""

    space: BackboneSpace

    def _features(
        self,
        x: torch.Tensor,
        blocks: Sequence[nn.Module],
        depths: Sequence[int],
        upto: int | None = None,
    ) -> list[torch.Tensor]:
        """Fusion candidates in order; with ``upto``, stop once candidate ``upto`` exists, so
        that a network reading early features only does not run (or export) the rest."""
        last = len(depths) + 1 if upto is None else upto
        x = self.first(self.stem(x))
        features = [x]
        start = 0
        for end in _stage_ends(depths):
            if len(features) > last:
                return features
            for block in blocks[start:end]:
                x = block(x)
            features.append(x)
            start = end
        if len(features) > last:
            return features
        embedding = self.feature_mix(self.final_expand(x))
        features.append(torch.flatten(embedding, 1))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x)[-1])

    def feature_shapes(self) -> list[tuple[int, ...]]:
        return self.space.feature_shapes()


class OFASupernet(_Backbone):
    """All subnets of a :class:`BackboneSpace` in one weight-sharing network."""

    def __init__(self, space: BackboneSpace) -> None:
        super().__init__()
        self.space = space
        self.stem = ConvLayer(space.stem_spec())
        self.first = MBConvLayer(space.first_spec())
        self.blocks = nn.ModuleList()
        for s, stage in enumerate(space.stages):
            for position in range(stage.max_depth):
                spec = space.block_spec(s, position, max(space.ks_choices), max(space.e_choices))
                self.blocks.append(
                    DynamicMBConv(
                        spec.in_ch,
                        spec.out_ch,
                        spec.stride,
                        spec.use_se,
                        spec.act,
                        space.ks_choices,
                        space.e_choices,
                    )
                )
        heads = dict(space.head_specs())
        self.final_expand = ConvLayer(heads["final_expand"])
        self.feature_mix = ConvLayer(heads["feature_mix"])
        self.classifier = LinearLayer(heads["classifier"])
        self.active: Config = space.max_config()

    # Delegations kept so callers need only the supernet.
    def sample_config(self, rng: random.Random | int | None = None) -> Config:
        return self.space.sample_config(rng)

    def max_config(self) -> Config:
        return self.space.max_config()

    def min_config(self) -> Config:
        return self.space.min_config()

    def validate_config(self, config: Mapping[str, Any]) -> Config:
        return self.space.validate_config(config)

    def num_configs(self) -> int:
        return self.space.num_configs()

    def parts(self, config: Mapping[str, Any]) -> Parts:
        return self.space.parts(config)

    def set_active(self, config: Mapping[str, Any]) -> None:
        self.active = self.space.validate_config(config)
        for block, kernel, expand in zip(
            self.blocks, self.active["ks"], self.active["e"], strict=True
        ):
            block.set_active(kernel, expand)

    def _active_modules(self) -> list[DynamicMBConv]:
        slots = [
            sum(s.max_depth for s in self.space.stages[:i]) + p
            for i, p, _, _ in self.space.active_blocks(self.active)
        ]
        return [self.blocks[i] for i in slots]

    def forward_features(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        return self._features(x, self._active_modules(), self.active["d"], upto)

    @torch.no_grad()
    def extract(self, config: Mapping[str, Any] | None = None) -> StaticBackbone:
        """The static subnet ``config`` (default: the active one) with its own copied weights.

        The static blocks are built (their discarded initialisation drawn) under a forked RNG,
        so extracting never shifts a caller's seeded random stream.
        """
        config = self.space.validate_config(config if config is not None else self.active)
        blocks = []
        with torch.random.fork_rng(devices=[]):
            for s, p, kernel, expand in self.space.active_blocks(config):
                slot = sum(st.max_depth for st in self.space.stages[:s]) + p
                in_shape = self.space.block_spec(s, p, kernel, expand).in_shape
                blocks.append(self.blocks[slot].export(in_shape, kernel, expand))
        return StaticBackbone(
            self.space,
            config,
            stem=copy.deepcopy(self.stem),
            first=copy.deepcopy(self.first),
            blocks=blocks,
            final_expand=copy.deepcopy(self.final_expand),
            feature_mix=copy.deepcopy(self.feature_mix),
            classifier=copy.deepcopy(self.classifier),
        ).train(self.training)


class StaticBackbone(_Backbone):
    """One subnet as a plain network of static blocks (what is profiled, exported and deployed)."""

    def __init__(
        self,
        space: BackboneSpace,
        config: Config,
        *,
        stem: nn.Module,
        first: nn.Module,
        blocks: Sequence[nn.Module],
        final_expand: nn.Module,
        feature_mix: nn.Module,
        classifier: nn.Module,
    ) -> None:
        super().__init__()
        self.space, self.config = space, config
        self.stem, self.first = stem, first
        self.blocks = nn.ModuleList(blocks)
        self.final_expand, self.feature_mix, self.classifier = final_expand, feature_mix, classifier

    @classmethod
    def fresh(cls, space: BackboneSpace, config: Mapping[str, Any]) -> StaticBackbone:
        """A freshly initialised subnet (no supernet needed), e.g. to profile it end to end."""
        config = space.validate_config(config)
        specs = dict(space.parts(config))
        return cls(
            space,
            config,
            stem=specs["stem"].build().train(),
            first=specs["first"].build().train(),
            blocks=[
                space.block_spec(s, p, k, e).build().train()
                for s, p, k, e in space.active_blocks(config)
            ],
            final_expand=specs["final_expand"].build().train(),
            feature_mix=specs["feature_mix"].build().train(),
            classifier=specs["classifier"].build().train(),
        )

    def forward_features(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        return self._features(x, list(self.blocks), self.config["d"], upto)

    def parts(self) -> Parts:
        return self.space.parts(self.config)
