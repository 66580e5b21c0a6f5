"""The one dataset interface that training and search use, whatever the source format.

An item is ``({modality: float32 tensor}, label)``. The label is an int64 scalar for a
``"multiclass"`` task and a float32 0/1 vector of length ``n_classes`` for ``"multilabel"``.
Inputs come out normalised with statistics of the train split (``dataset.stats``), so the same
numbers can be applied at deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hnas_edge.errors import HnasError

SPLITS = ("train", "val", "test")
TASKS = ("multiclass", "multilabel")


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` of one modality; one entry per channel (or one for all)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a ``(D,)`` / ``(C, H, W)`` sample or a ``(B, D)`` / ``(B, C, H, W)`` batch."""
        shape = [1] * x.dim()
        shape[0 if x.dim() in (1, 3) else 1] = len(self.mean)
        mean = torch.tensor(self.mean, dtype=x.dtype).reshape(shape)
        std = torch.tensor(self.std, dtype=x.dtype).reshape(shape)
        return (x - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @staticmethod
    def identity(channels: int = 1) -> Normalization:
        return Normalization((0.0,) * channels, (1.0,) * channels)

    @staticmethod
    def fit(x: np.ndarray, channel_axis: int | None = 1) -> Normalization:
        """Statistics of a batch ``x``: per channel along ``channel_axis``, or global if None."""
        x = np.asarray(x, dtype=np.float64)
        if channel_axis is None:
            return Normalization((float(x.mean()),), (float(x.std()) or 1.0,))
        axes = tuple(i for i in range(x.ndim) if i != channel_axis)
        std = np.where(x.std(axis=axes) > 0, x.std(axis=axes), 1.0)
        return Normalization(tuple(map(float, x.mean(axis=axes))), tuple(map(float, std)))


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise HnasError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def require_files(root: Path, names: Sequence[str], layout: str) -> None:
    """Raise one line naming every expected file of ``layout`` that is missing under ``root``."""
    missing = [name for name in names if not (root / name).exists()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise HnasError(
            f"{layout} dataset at {root} is incomplete: missing {shown}; "
            f"see docs/datasets.md for the expected layout"
        )


class MultimodalDataset(Dataset):
    """Base of every dataset: what the model needs to know, plus item access."""

    def __init__(
        self,
        name: str,
        split: str,
        modalities: Sequence[str],
        n_classes: int,
        task: str,
        stats: Mapping[str, Normalization],
        input_shapes: Mapping[str, tuple[int, ...]],
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.name = name
        self.split = check_split(split)
        self.modalities = tuple(modalities)
        self.n_classes = int(n_classes)
        self.task = task
        self.stats = dict(stats)
        self.input_shapes = {m: tuple(input_shapes[m]) for m in self.modalities}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{m}={self.input_shapes[m]}" for m in self.modalities)
        return f"<{self.name}:{self.split} n={len(self)} {self.task}/{self.n_classes} {shapes}>"


class TensorDataset(MultimodalDataset):
    """A dataset held in memory as tensors, normalised once at construction.

    ``inputs`` and ``targets`` are exposed so that training can slice whole batches directly.
    """

    def __init__(
        self,
        name: str,
        split: str,
        inputs: Mapping[str, np.ndarray | torch.Tensor],
        targets: np.ndarray | torch.Tensor,
        n_classes: int,
        task: str,
        stats: Mapping[str, Normalization],
        normalize: bool = True,
    ) -> None:
        tensors = {
            m: torch.as_tensor(np.asarray(x), dtype=torch.float32) for m, x in inputs.items()
        }
        super().__init__(
            name,
            split,
            list(tensors),
            n_classes,
            task,
            stats,
            {m: tuple(t.shape[1:]) for m, t in tensors.items()},
        )
        if normalize:
            tensors = {m: stats[m].apply(t) for m, t in tensors.items()}
        self.inputs = tensors
        label_dtype = torch.int64 if task == "multiclass" else torch.float32
        self.targets = torch.as_tensor(np.asarray(targets), dtype=label_dtype)
        sizes = {len(self.targets), *(len(t) for t in tensors.values())}
        if len(sizes) != 1:
            raise HnasError(
                f"{name} {split}: modalities and labels differ in length {sorted(sizes)}"
            )

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {m: t[index] for m, t in self.inputs.items()}, self.targets[index]


class LazyDataset(MultimodalDataset):
    """A dataset read from disk item by item (large image datasets)."""

    def __init__(
        self,
        name: str,
        split: str,
        length: int,
        fetch: Callable[[int], tuple[dict[str, np.ndarray], np.ndarray | int]],
        n_classes: int,
        task: str,
        stats: Mapping[str, Normalization],
        input_shapes: Mapping[str, tuple[int, ...]],
        normalize: bool = True,
    ) -> None:
        super().__init__(name, split, list(input_shapes), n_classes, task, stats, input_shapes)
        self._length = length
        self._fetch = fetch
        self._normalize = normalize

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        raw, label = self._fetch(index)
        item = {}
        for modality in self.modalities:
            x = torch.as_tensor(np.asarray(raw[modality]), dtype=torch.float32)
            item[modality] = self.stats[modality].apply(x) if self._normalize else x
        dtype = torch.int64 if self.task == "multiclass" else torch.float32
        return item, torch.as_tensor(np.asarray(label), dtype=dtype)


def fit_stats(
    fetch: Callable[[int], tuple[dict[str, np.ndarray], object]],
    length: int,
    modalities: Sequence[str],
    max_items: int = 256,
) -> dict[str, Normalization]:
    """Normalisation of each modality from up to ``max_items`` evenly spaced items of a split:
    per channel for images ``(C, H, W)``, one global value for feature vectors."""
    if length == 0:
        return {m: Normalization.identity() for m in modalities}
    picks = np.unique(np.linspace(0, length - 1, min(length, max_items)).astype(int))
    items = [fetch(int(i))[0] for i in picks]
    stats = {}
    for m in modalities:
        x = np.stack([np.asarray(item[m], dtype=np.float32) for item in items])
        stats[m] = Normalization.fit(x, channel_axis=1 if x.ndim == 4 else None)
    return stats
