"""Static building blocks: plain modules built from layer specs.

These are what the profiler measures, what extracted subnets are made of and what is exported, so
they hold no elasticity at all (that lives in :mod:`hnas_edge.space.dynamic`). Layout follows
MobileNetV3 as once-for-all builds it: convolutions without bias, batch norm, ReLU or hard swish,
squeeze-excitation with a hard sigmoid gate.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from hnas_edge.errors import ConfigError
from hnas_edge.space.specs import (
    ACTIVATIONS,
    ConvSpec,
    LinearSpec,
    MBConvSpec,
    register_builder,
)


def activation(name: str) -> nn.Module:
    """The module for an activation name of :data:`~hnas_edge.space.specs.ACTIVATIONS`."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    if name == "none":
        return nn.Identity()
    raise ConfigError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")


def conv_bn_act(
    in_ch: int, out_ch: int, kernel: int, stride: int, act: str, groups: int = 1, bn: bool = True
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding) → batch norm → activation, as named sub-modules."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
    )
    if bn:
        layers["bn"] = nn.BatchNorm2d(out_ch)
    layers["act"] = activation(act)
    return nn.Sequential(layers)


class SqueezeExcite(nn.Module):
    """Channel gate: global average → 1×1 reduce → ReLU → 1×1 expand → hard sigmoid → scale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)
        gate = self.expand(torch.relu(self.reduce(gate)))
        return x * nn.functional.hardsigmoid(gate)


class ConvLayer(nn.Module):
    """A :class:`ConvSpec`: convolution → [BN] → activation → [global average pool]."""

    def __init__(self, spec: ConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.body = conv_bn_act(
            spec.in_ch, spec.out_ch, spec.kernel, spec.stride, spec.act, bn=spec.use_bn
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        return x.mean((2, 3), keepdim=True) if self.spec.pool else x


class MBConvLayer(nn.Module):
    """An :class:`MBConvSpec`: [1×1 expand] → k×k depthwise → [SE] → 1×1 project (+ identity)."""

    def __init__(self, spec: MBConvSpec) -> None:
        super().__init__()
        self.spec = spec
        mid = spec.mid_ch or spec.in_ch
        self.expand = conv_bn_act(spec.in_ch, mid, 1, 1, spec.act) if spec.mid_ch else None
        self.depthwise = conv_bn_act(mid, mid, spec.kernel, spec.stride, spec.act, groups=mid)
        self.se = SqueezeExcite(mid, spec.se_ch) if spec.use_se else None
        self.project = conv_bn_act(mid, spec.out_ch, 1, 1, "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.spec.residual else out


class LinearLayer(nn.Module):
    """A :class:`LinearSpec`: flatten → fully connected (with bias)."""

    def __init__(self, spec: LinearSpec) -> None:
        super().__init__()
        self.spec = spec
        self.linear = nn.Linear(spec.in_features, spec.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


register_builder(ConvSpec, ConvLayer)
register_builder(MBConvSpec, MBConvLayer)
register_builder(LinearSpec, LinearLayer)
