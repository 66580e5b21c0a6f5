"""Layer specs: the static description of one measurable part of a network.

A spec is a frozen dataclass, so the same part always hashes and compares equal. It knows its
input shape (batch excluded), its output shape, its multiply-accumulate count, how to build a
fresh module of itself, and its canonical LUT key. The profiler measures specs, the cost model
sums specs, and static networks are sequences of modules built from specs: one description, used
everywhere, so that what is measured is exactly what is deployed.

This module imports nothing else of the package (reading a LUT needs specs, not torch). The
modules that implement a spec register its builder (:func:`register_builder`) when they are
imported: :mod:`~hnas_edge.space.blocks`, :mod:`~hnas_edge.space.fusion` and
:mod:`~hnas_edge.space.maxout`. The package (``hnas_edge/space/__init__.py``) names them, and
:meth:`LayerSpec.build` imports them on its first call, so a spec builds whoever imported what.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from torch import nn

ACTIVATIONS = ("relu", "h_swish", "none")
FUSION_OPS = ("Sum", "ScaleDotAttn", "LinearGLU", "ConcatFC", "SE1", "SE2", "CatConvMish")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without losing more than 10%."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Spatial output size of a 'same'-padded convolution (padding kernel // 2)."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


def conv_out_hw(in_shape: tuple[int, int, int], kernel: int, stride: int) -> tuple[int, int]:
    """Output height and width of a 'same'-padded convolution of a C×H×W input."""
    _, h, w = in_shape
    return conv_out(h, kernel, stride), conv_out(w, kernel, stride)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as people write it: ``1×20×20``."""
    return "×".join(map(str, shape))


S = TypeVar("S", bound="LayerSpec")

#: Spec class → the function that builds a fresh module of one of its specs.
_BUILDERS: dict[type, Callable[[Any], nn.Module]] = {}
#: Imports the modules that register builders (set by the package, ``hnas_edge/space``).
_builder_loader: Callable[[], None] | None = None


def register_builder(spec_class: type[S], builder: Callable[[S], nn.Module]) -> None:
    """``builder(spec)`` builds a fresh module for every spec of ``spec_class``."""
    _BUILDERS[spec_class] = builder


def set_builder_loader(loader: Callable[[], None]) -> None:
    """``loader()`` imports the modules that call :func:`register_builder`; :func:`builder_of`
    runs it when it finds no builder."""
    global _builder_loader
    _builder_loader = loader


def builder_of(spec_class: type) -> Callable[[Any], nn.Module]:
    """The registered builder of ``spec_class`` (the builder modules imported on first need)."""
    if spec_class not in _BUILDERS and _builder_loader is not None:
        _builder_loader()
    try:
        return _BUILDERS[spec_class]
    except KeyError:
        raise LookupError(f"no module registered a builder for {spec_class.__name__}") from None


def _render(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):
        return "x".join(_render(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class LayerSpec:
    """Base of all specs. Subclasses set ``kind`` and implement the shape and cost methods."""

    kind: ClassVar[str] = ""

    @property
    def key(self) -> str:
        """Canonical LUT key: the kind, then every field in declared order."""
        fields = "|".join(
            f"{f.name}={_render(getattr(self, f.name))}" for f in dataclasses.fields(self)
        )
        return f"{self.kind}|{fields}"

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the inputs at batch 1, in the order ``forward`` takes them."""
        raise NotImplementedError

    def output_shape(self) -> tuple[int, ...]:
        """Shape of the output, batch excluded."""
        raise NotImplementedError

    def macs(self) -> int:
        raise NotImplementedError

    def build(self) -> nn.Module:
        """A freshly initialised module for this spec, in eval mode (its registered builder)."""
        return builder_of(type(self))(self).eval()

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ConvSpec(LayerSpec):
    """Convolution → optional batch norm → activation → optional global average pool.

    ``pool`` folds the global average pooling that follows a backbone's final expand layer into
    that layer, so that every operation of a network belongs to exactly one measured part.
    """

    kind: ClassVar[str] = "conv"
    in_shape: tuple[int, int, int]
    out_ch: int
    kernel: int
    stride: int
    use_bn: bool
    act: str
    pool: bool = False

    @property
    def in_ch(self) -> int:
        return self.in_shape[0]

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, *self.in_shape),)

    def output_shape(self) -> tuple[int, ...]:
        if self.pool:
            return (self.out_ch, 1, 1)
        return (self.out_ch, *conv_out_hw(self.in_shape, self.kernel, self.stride))

    def macs(self) -> int:
        oh, ow = conv_out_hw(self.in_shape, self.kernel, self.stride)
        return oh * ow * self.out_ch * self.in_ch * self.kernel * self.kernel


@dataclass(frozen=True)
class MBConvSpec(LayerSpec):
    """Inverted residual block: 1×1 expand → k×k depthwise → [SE] → 1×1 project (+ residual).

    With ``expand == 1`` there is no expand convolution (MobileNetV3's first block).
    The residual is on whenever stride is 1 and channels are unchanged.
    """

    kind: ClassVar[str] = "mbconv"
    in_shape: tuple[int, int, int]
    out_ch: int
    expand: int
    kernel: int
    stride: int
    use_se: bool
    act: str

    @property
    def in_ch(self) -> int:
        return self.in_shape[0]

    @property
    def mid_ch(self) -> int:
        """Expanded width, rounded as once-for-all rounds it; 0 when there is no expansion."""
        if self.expand == 1:
            return 0
        return make_divisible(round(self.in_ch * self.expand), 8)

    @property
    def se_ch(self) -> int:
        return make_divisible((self.mid_ch or self.in_ch) // 4, 8)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, *self.in_shape),)

    def output_shape(self) -> tuple[int, ...]:
        return (self.out_ch, *conv_out_hw(self.in_shape, self.kernel, self.stride))

    def macs(self) -> int:
        _, h, w = self.in_shape
        oh, ow = conv_out_hw(self.in_shape, self.kernel, self.stride)
        mid = self.mid_ch or self.in_ch
        total = h * w * self.in_ch * self.mid_ch  # expand (0 when absent)
        total += oh * ow * mid * self.kernel * self.kernel  # depthwise
        if self.use_se:
            total += 2 * mid * self.se_ch
        total += oh * ow * mid * self.out_ch  # project
        return total


@dataclass(frozen=True)
class LinearSpec(LayerSpec):
    """Fully connected layer on a flat vector (classifiers and heads)."""

    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, self.in_features),)

    def output_shape(self) -> tuple[int, ...]:
        return (self.out_features,)

    def macs(self) -> int:
        return self.in_features * self.out_features


@dataclass(frozen=True)
class MaxoutSpec(LayerSpec):
    """The Maxout text backbone as one part (it is not elastic): text features in, feature out.

    Block ``i`` is a linear layer to ``width_i × pool`` units, a max over each group of ``pool``,
    then batch norm; the first block has ``hidden`` units and each next one ``factor`` times more.
    """

    kind: ClassVar[str] = "maxout"
    in_features: int
    hidden: int
    n_blocks: int
    factor: int
    pool: int = 4

    def widths(self) -> list[int]:
        return [self.hidden * self.factor**i for i in range(self.n_blocks)]

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, self.in_features),)

    def output_shape(self) -> tuple[int, ...]:
        return (self.widths()[-1],)

    def macs(self) -> int:
        widths = self.widths()
        ins = [self.in_features, *widths[:-1]]
        return sum(i * o * self.pool for i, o in zip(ins, widths, strict=True))


@dataclass(frozen=True)
class AdapterSpec(LayerSpec):
    """Brings one backbone feature (a C×H×W map or a flat vector) to the fusion shape (C, L)."""

    kind: ClassVar[str] = "adapter"
    in_shape: tuple[int, ...]
    C: int
    L: int

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, *self.in_shape),)

    def output_shape(self) -> tuple[int, ...]:
        return (self.C, self.L)

    def macs(self) -> int:
        return self.in_shape[0] * self.C * self.L


@dataclass(frozen=True)
class FusionOpSpec(LayerSpec):
    """One fusion operator of Table 2 on two (C, L) inputs."""

    kind: ClassVar[str] = "fusion"
    op: str
    C: int
    L: int

    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((1, self.C, self.L), (1, self.C, self.L))

    def output_shape(self) -> tuple[int, ...]:
        return (self.C, self.L)

    def macs(self) -> int:
        c, length = self.C, self.L
        return {
            "Sum": 0,
            "ScaleDotAttn": 2 * length * length * c,
            "LinearGLU": 2 * c * c * length,
            "ConcatFC": 2 * c * c * length,
            "SE1": c * c,
            "SE2": c * c,
            "CatConvMish": 4 * c * c * length,
        }[self.op]


SPEC_KINDS: dict[str, type[LayerSpec]] = {
    cls.kind: cls
    for cls in (ConvSpec, MBConvSpec, LinearSpec, MaxoutSpec, AdapterSpec, FusionOpSpec)
}


def spec_from_dict(data: dict) -> LayerSpec:
    """Inverse of :meth:`LayerSpec.to_dict` (tuples restored from JSON lists)."""
    data = dict(data)
    cls = SPEC_KINDS[data.pop("kind")]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)
