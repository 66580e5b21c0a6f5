"""The Maxout text backbone (Table 9: hidden 128, 2 blocks, factor 2; pool size 4).

It is not searched: one fixed network over a text feature vector, measured as one part. Its
fusion candidates are the outputs of its blocks; its classifier serves unimodal training only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from hnas_edge.checks import shown
from hnas_edge.errors import ConfigError
from hnas_edge.space.blocks import LinearLayer
from hnas_edge.space.specs import LayerSpec, LinearSpec, MaxoutSpec, register_builder


class MaxoutUnit(nn.Module):
    """Linear map to ``out_features × pool`` units, then the max of each group of ``pool``."""

    def __init__(self, in_features: int, out_features: int, pool: int) -> None:
        super().__init__()
        self.out_features, self.pool = out_features, pool
        self.linear = nn.Linear(in_features, out_features * pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = self.linear(x).view(x.shape[0], self.out_features, self.pool)
        return units.amax(dim=2)


class Maxout(nn.Module):
    """A :class:`MaxoutSpec`: blocks of maxout unit → batch norm → dropout."""

    def __init__(self, spec: MaxoutSpec, dropout: float = 0.3) -> None:
        super().__init__()
        self.spec = spec
        widths = spec.widths()
        ins = [spec.in_features, *widths[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(MaxoutUnit(i, o, spec.pool), nn.BatchNorm1d(o), nn.Dropout(dropout))
            for i, o in zip(ins, widths, strict=True)
        )

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_outputs(x)[-1]


register_builder(MaxoutSpec, Maxout)


@dataclass(frozen=True)
class MaxoutSpace:
    """The text backbone's macro-architecture. It has one configuration, written ``{}``.

    A fixed :class:`~hnas_edge.space.modality.ModalitySpace`: not searched, trained plainly, its
    network (:class:`MaxoutBackbone`) its own only subnet.
    """

    elastic: ClassVar[bool] = False
    label: ClassVar[str] = "Maxout (fixed)"

    in_features: int
    n_classes: int
    hidden: int = 128
    n_blocks: int = 2
    factor: int = 2
    pool: int = 4

    @property
    def in_shape(self) -> tuple[int]:
        """One sample's input (no batch dimension), named as a convolutional space names it."""
        return (self.in_features,)

    @property
    def spec(self) -> MaxoutSpec:
        return MaxoutSpec(self.in_features, self.hidden, self.n_blocks, self.factor, self.pool)

    def num_configs(self) -> int:
        return 1

    def validate_config(self, config: Mapping[str, Any]) -> dict:
        if not isinstance(config, Mapping) or config:
            raise ConfigError(
                f"the Maxout text backbone is not searched; its config is {{}}, got {shown(config)}"
            )
        return {}

    def sample_config(self, rng: random.Random | int | None = None) -> dict:
        return {}

    def max_config(self) -> dict:
        return {}

    def min_config(self) -> dict:
        return {}

    def gene_choices(self, gene: str, index: int) -> tuple[int, ...]:
        raise ConfigError(f"the Maxout text backbone is not searched; it has no gene {gene!r}")

    def head_spec(self) -> LinearSpec:
        return LinearSpec(self.spec.output_shape()[0], self.n_classes)

    def parts(self, config: Mapping[str, Any] | None = None) -> list[tuple[str, LayerSpec]]:
        self.validate_config(config or {})
        return [("maxout", self.spec), ("classifier", self.head_spec())]

    def parts_upto(self, config: Mapping[str, Any], feature: int) -> list[tuple[str, LayerSpec]]:
        """The text backbone is measured as one part, whichever of its blocks is read."""
        return self.parts(config)[:1]

    def all_specs(self) -> list[LayerSpec]:
        return [spec for _, spec in self.parts()]

    def feature_shapes(self) -> list[tuple[int, ...]]:
        return [(width,) for width in self.spec.widths()]

    def supernet(self) -> MaxoutBackbone:
        return MaxoutBackbone(self)

    def fresh(self, config: Mapping[str, Any]) -> MaxoutBackbone:
        self.validate_config(config)
        return MaxoutBackbone(self)


class MaxoutBackbone(nn.Module):
    """The text backbone with its classifier; the same interface as a static image backbone."""

    def __init__(self, space: MaxoutSpace) -> None:
        super().__init__()
        self.space, self.config = space, {}
        self.maxout = Maxout(space.spec)
        self.classifier = LinearLayer(space.head_spec())

    def forward_features(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        return self.maxout.block_outputs(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.maxout(x))

    def feature_shapes(self) -> list[tuple[int, ...]]:
        return self.space.feature_shapes()

    def parts(self) -> list[tuple[str, LayerSpec]]:
        return self.space.parts()

    def set_active(self, config: Mapping[str, Any]) -> None:
        self.space.validate_config(config)

    def extract(self, config: Mapping[str, Any] | None = None) -> MaxoutBackbone:
        """A copy with its own weights (the text backbone has one subnet: itself)."""
        self.space.validate_config(config or {})
        clone = MaxoutBackbone(self.space)
        clone.load_state_dict(self.state_dict())
        return clone.train(self.training)
