"""Named search spaces mirroring the paper's three (as plain data).

The macro-architectures are pinned by the keys of the paper's published Jetson LUTs: stems,
first blocks, stage widths, strides, where squeeze-excitation is on, the final 1×1 expand, the
feature-mix layer without batch norm and the classifier are exactly theirs, so that a LUT imported
from those tables covers each preset completely. Stage activations follow MobileNetV3 (ReLU in the
early stages, hard swish later), as once-for-all builds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hnas_edge.errors import ConfigError
from hnas_edge.space.maxout import MaxoutSpace
from hnas_edge.space.modality import ModalitySpace
from hnas_edge.space.ofa import BackboneSpace, StageSpace
from hnas_edge.space.specs import FUSION_OPS, AdapterSpec, FusionOpSpec, LayerSpec, LinearSpec


@dataclass(frozen=True)
class SpacePreset:
    """A whole multimodal search space: one backbone space per modality, the fusion dimensions
    (C channels × L positions for every fused feature) and the ranges of fusion cells and nodes."""

    name: str
    backbones: tuple[tuple[str, ModalitySpace], ...]
    n_classes: int
    task: str = "multiclass"
    fusion_C: int = 192
    fusion_L: int = 16
    cells: tuple[int, ...] = (1, 2, 3, 4)
    nodes: tuple[int, ...] = (1, 2, 3, 4)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.backbones)

    def backbone(self, modality: str) -> ModalitySpace:
        for name, space in self.backbones:
            if name == modality:
                return space
        raise ConfigError(
            f"preset {self.name!r} has no modality {modality!r}; "
            f"it has {', '.join(self.modalities)}"
        )

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """One sample's input shape per modality (no batch dimension): what the data must be."""
        return {name: tuple(space.in_shape) for name, space in self.backbones}

    def adapter_specs(self) -> Iterator[tuple[str, int, AdapterSpec]]:
        """(modality, feature index, adapter) for every fusion candidate of every backbone."""
        for modality, space in self.backbones:
            for index, shape in enumerate(space.feature_shapes()):
                yield modality, index, AdapterSpec(tuple(shape), self.fusion_C, self.fusion_L)

    def head_spec(self) -> LinearSpec:
        """The multimodal classifier on the flattened fusion output."""
        return LinearSpec(self.fusion_C * self.fusion_L, self.n_classes)

    def fusion_specs(self) -> list[FusionOpSpec]:
        return [FusionOpSpec(op, self.fusion_C, self.fusion_L) for op in FUSION_OPS]

    def elastic_backbones(self) -> list[tuple[str, ModalitySpace]]:
        """The searchable backbones (:attr:`ModalitySpace.elastic`), in the preset's order."""
        return [(m, s) for m, s in self.backbones if s.elastic]

    def required_specs(self, accounting: str = "ours") -> list[LayerSpec]:
        """The parts a LUT must hold to price this space. ``paper``: what Harmonic-NAS's tables
        price, the searchable backbones and the fusion operators (no adapters, no head, and no
        Maxout text backbone, which is the same in every architecture)."""
        if accounting == "ours":
            return self.all_specs()
        specs = [spec for _, space in self.elastic_backbones() for spec in space.all_specs()]
        return list(dict.fromkeys([*specs, *self.fusion_specs()]))

    def all_specs(self) -> list[LayerSpec]:
        """Every part any architecture of this space can contain: what a complete LUT holds."""
        specs: list[LayerSpec] = []
        for _, space in self.backbones:
            specs += space.all_specs()
        specs += [adapter for _, _, adapter in self.adapter_specs()]
        specs += [*self.fusion_specs(), self.head_spec()]
        return list(dict.fromkeys(specs))


def _mobilenet_stage(width: int, stride: int, se: bool, act: str) -> StageSpace:
    return StageSpace(width=width, stride=stride, max_depth=4, use_se=se, act=act)


def _avmnist() -> SpacePreset:
    def backbone(size: int) -> BackboneSpace:
        return BackboneSpace(
            in_shape=(1, size, size),
            stem_ch=16,
            first_ch=16,
            stages=(_mobilenet_stage(24, 2, False, "relu"),),
            final_ch=40,
            mix_ch=80,
            n_classes=10,
        )

    return SpacePreset("avmnist", (("image", backbone(28)), ("audio", backbone(20))), 10)


def _memes() -> SpacePreset:
    image = BackboneSpace(
        in_shape=(3, 112, 112),
        stem_ch=16,
        first_ch=16,
        stages=(
            _mobilenet_stage(24, 2, False, "relu"),
            _mobilenet_stage(40, 2, True, "relu"),
            _mobilenet_stage(80, 2, False, "h_swish"),
        ),
        final_ch=112,
        mix_ch=160,
        n_classes=3,
    )
    text = MaxoutSpace(in_features=77, n_classes=3)
    return SpacePreset("memes", (("image", image), ("text", text)), 3)


def _mmimdb() -> SpacePreset:
    image = BackboneSpace(
        in_shape=(3, 224, 224),
        stem_ch=24,
        first_ch=24,
        stages=(
            _mobilenet_stage(32, 2, False, "relu"),
            _mobilenet_stage(48, 2, True, "relu"),
            _mobilenet_stage(96, 2, False, "h_swish"),
            _mobilenet_stage(136, 1, True, "h_swish"),
            _mobilenet_stage(192, 2, True, "h_swish"),
        ),
        final_ch=1152,
        mix_ch=1536,
        n_classes=23,
    )
    text = MaxoutSpace(in_features=300, n_classes=23)
    return SpacePreset("mmimdb", (("image", image), ("text", text)), 23, task="multilabel")


PRESETS = {"avmnist": _avmnist, "memes": _memes, "mmimdb": _mmimdb}

#: The preset each dataset is searched in (the bundled AV-digits has AV-MNIST's shapes).
DATASET_PRESETS = {
    "avdigits": "avmnist",
    "avmnist": "avmnist",
    "memes": "memes",
    "mmimdb": "mmimdb",
}


def get_preset(name: str) -> SpacePreset:
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown space {name!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def preset_for_dataset(dataset: str) -> SpacePreset:
    if dataset not in DATASET_PRESETS:
        raise ConfigError(
            f"no search space for dataset {dataset!r}; known datasets: {', '.join(DATASET_PRESETS)}"
        )
    return get_preset(DATASET_PRESETS[dataset])
