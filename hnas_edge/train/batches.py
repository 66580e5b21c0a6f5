"""Batches of one modality, in memory when the dataset is, reproducibly shuffled."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from hnas_edge.data.base import MultimodalDataset


def modality_tensors(
    dataset: MultimodalDataset, modality: str, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All samples of one modality and the labels, as two tensors (loaded once)."""
    if hasattr(dataset, "inputs"):
        x, y = dataset.inputs[modality], dataset.targets
    else:
        loader = DataLoader(dataset, batch_size=256, shuffle=False)
        xs, ys = zip(*((inputs[modality], labels) for inputs, labels in loader), strict=True)
        x, y = torch.cat(xs), torch.cat(ys)
    return (x[:limit], y[:limit]) if limit else (x, y)


@dataclass(frozen=True)
class ModalityData:
    """One modality's training and validation tensors and the task ("multiclass"|"multilabel")."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    task: str

    def to(self, device: torch.device) -> ModalityData:
        """The same tensors on ``device`` (themselves when they are there already)."""
        return ModalityData(
            (self.train[0].to(device), self.train[1].to(device)),
            (self.val[0].to(device), self.val[1].to(device)),
            self.task,
        )

    @classmethod
    def of(
        cls,
        train: MultimodalDataset,
        val: MultimodalDataset,
        modality: str,
        limit: int | None = None,
    ) -> ModalityData:
        """``limit`` keeps only the first N training samples (quick looks, tests)."""
        return cls(
            modality_tensors(train, modality, limit), modality_tensors(val, modality), train.task
        )


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled with ``generator``, in order without it. The order is drawn on the CPU (the
    generator's device) whatever device ``x`` is on, so every device sees the same batches."""
    order = torch.randperm(len(x), generator=generator) if generator is not None else None
    if order is not None:
        order = order.to(x.device)
    for start in range(0, len(x), batch_size):
        index = (
            order[start : start + batch_size]
            if order is not None
            else slice(start, start + batch_size)
        )
        yield x[index], y[index]
