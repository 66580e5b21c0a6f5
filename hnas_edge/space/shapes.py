"""Input shapes: the samples given to a network against the sizes it was built (and priced) for.

One check serves every command that feeds samples to a network: ``hnas train`` and ``hnas search``
(a dataset against its preset's backbones), ``hnas export`` (the samples it checks parity on) and
``hnas deploy`` (arrays against what the artifact's sidecar declares). Without it a larger input
runs silently: a convolutional backbone takes any size, its feature adapters would refuse the
larger maps only late, and the LUT would price a network that is not the one that runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from hnas_edge.errors import ConfigError
from hnas_edge.space.presets import PRESETS, SpacePreset, get_preset
from hnas_edge.space.specs import shape_text

Shapes = Mapping[str, Sequence[int]]


class Samples(Protocol):
    """What the check reads of a dataset (``hnas_edge.data.MultimodalDataset`` is one)."""

    name: str
    input_shapes: dict[str, tuple[int, ...]]


#: How a user brings each kind of sample to another size (the default: "resize the X inputs").
_RESIZE = {"audio": "resample the spectrograms", "image": "resize the images"}


def check_input_shapes(got: Shapes, expected: Shapes, expected_by: str, source: str) -> None:
    """Refuse in one line the first modality of ``expected`` whose per-sample shape (no batch
    dimension) in ``got`` differs, naming both shapes and the fix. ``expected_by`` and ``source``
    name the two sides (``"preset avmnist"``, ``"dataset avmnist"``). Modalities ``got`` has
    beyond ``expected`` are never read, so not checked."""
    for modality, want in expected.items():
        if modality not in got:
            raise ConfigError(
                f"{source} has no {modality} samples; {expected_by} expects "
                f"{_describe(expected)}: give it data with these modalities"
            )
        have, want = tuple(got[modality]), tuple(want)
        if have != want:
            raise ConfigError(
                f"{modality} samples of {source} are {shape_text(have)} but {expected_by} "
                f"expects {shape_text(want)}: {_fix(modality, have, want)}"
                f"{_other_presets(got)}; see docs/datasets.md"
            )


def check_dataset_shapes(preset: SpacePreset, data: Samples) -> None:
    """A dataset's samples against what ``preset``'s backbones take (and the LUT prices)."""
    check_input_shapes(
        data.input_shapes, preset.input_shapes(), f"preset {preset.name}", f"dataset {data.name}"
    )


def presets_taking(shapes: Shapes) -> list[str]:
    """The presets whose modalities are exactly those of ``shapes``, at those shapes."""
    given = {m: tuple(s) for m, s in shapes.items()}
    return [name for name in PRESETS if get_preset(name).input_shapes() == given]


def _fix(modality: str, have: tuple[int, ...], want: tuple[int, ...]) -> str:
    if len(want) == 1:
        return f"make the {modality} features vectors of {want[0]} values"
    same_channels = len(have) == len(want) and have[0] == want[0]
    size = want[1:] if same_channels else want
    return f"{_RESIZE.get(modality, f'resize the {modality} inputs')} to {shape_text(size)}"


def _other_presets(shapes: Shapes) -> str:
    names = presets_taking(shapes)
    return f" (or use preset {' or '.join(names)}, which takes these shapes)" if names else ""


def _describe(shapes: Shapes) -> str:
    return ", ".join(f"{m} {shape_text(tuple(s))}" for m, s in shapes.items())
