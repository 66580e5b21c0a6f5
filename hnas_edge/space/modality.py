"""What a modality's backbone space offers its callers, and what the network it trains offers.

Two spaces implement :class:`ModalitySpace`: the elastic once-for-all MobileNetV3
(:class:`~hnas_edge.space.ofa.BackboneSpace`, searched) and the fixed Maxout text backbone
(:class:`~hnas_edge.space.maxout.MaxoutSpace`, one configuration written ``{}``). Callers use these
members and ask :attr:`ModalitySpace.elastic` where the two differ in kind (only an elastic space
is searched, sandwich-trained and priced by the paper's accounting), never the class.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from hnas_edge.space.specs import LayerSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

#: A backbone configuration, e.g. once-for-all's ``{"ks": [...], "e": [...], "d": [...]}``.
Config = dict[str, list[int]]
#: Named measured parts in execution order.
Parts = list[tuple[str, LayerSpec]]


@runtime_checkable
class ModalitySpace(Protocol):
    """One modality's backbone space, as plain frozen data."""

    #: True for a space with configurations to search; False for a fixed network.
    elastic: ClassVar[bool]
    #: What ``hnas space show`` calls the space.
    label: ClassVar[str]

    @property
    def in_shape(self) -> tuple[int, ...]:
        """One sample's input shape (no batch dimension)."""
        ...

    def num_configs(self) -> int:
        """Distinct configurations (1 for a fixed network)."""
        ...

    def validate_config(self, config: Mapping[str, Any]) -> Config:
        """``config`` as plain lists, or a one-line :class:`~hnas_edge.errors.ConfigError`."""
        ...

    def sample_config(self, rng: random.Random | int | None = None) -> Config:
        """A random configuration (drawn from ``rng`` only)."""
        ...

    def max_config(self) -> Config: ...

    def min_config(self) -> Config: ...

    def gene_choices(self, gene: str, index: int) -> Sequence[int]:
        """The values entry ``index`` of the config's list ``gene`` may take (what mutation
        re-draws from)."""
        ...

    def parts(self, config: Mapping[str, Any]) -> Parts:
        """Every measured part of the whole backbone ``config``, classifier included."""
        ...

    def parts_upto(self, config: Mapping[str, Any], feature: int) -> Parts:
        """The parts that run to produce fusion candidate ``feature`` (no classifier)."""
        ...

    def all_specs(self) -> list[LayerSpec]:
        """Every part any configuration can contain (what a LUT must hold)."""
        ...

    def feature_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the fusion candidates, in order (they do not depend on the config)."""
        ...

    def supernet(self) -> ModalityNetwork:
        """A freshly initialised network to train: every configuration in one."""
        ...

    def fresh(self, config: Mapping[str, Any]) -> nn.Module:
        """A freshly initialised static network of ``config`` (to measure it end to end)."""
        ...


@runtime_checkable
class ModalityNetwork(Protocol):
    """The network trained for a :class:`ModalitySpace` (an ``nn.Module``)."""

    space: ModalitySpace

    def set_active(self, config: Mapping[str, Any]) -> None:
        """Run configuration ``config`` from now on."""
        ...

    def extract(self, config: Mapping[str, Any] | None = None) -> nn.Module:
        """The static network ``config`` (default: the active one) with its own weights."""
        ...

    def forward_features(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """The fusion candidates of the active configuration; with ``upto``, those up to it at
        least (a network that cannot stop early returns them all)."""
        ...

    def feature_shapes(self) -> list[tuple[int, ...]]: ...
