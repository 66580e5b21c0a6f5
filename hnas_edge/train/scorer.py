"""Score a subnet quickly: recalibrate batch norm, the task's metric on validation. What stage 1
calls."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from torch import nn

from hnas_edge.accelerator import FP32, Precision
from hnas_edge.data.base import MultimodalDataset
from hnas_edge.train.batches import ModalityData
from hnas_edge.train.evaluation import subnet_metric


class SubnetScorer:
    """Validation metric (the task's: accuracy or weighted F1) of subnets of one modality's trained
    supernet.

    The modality's tensors are gathered once, on the device of ``supernet``; every score
    recalibrates batch norm on the same first ``bn_batches`` shuffled training batches, so a
    config always gets the same score.
    """

    def __init__(
        self,
        supernet: nn.Module,
        data: ModalityData,
        bn_batches: int = 8,
        batch_size: int = 64,
        precision: Precision = FP32,
    ) -> None:
        self.supernet = supernet
        self.precision = precision
        self.data = data.to(next(supernet.parameters()).device)
        self.bn_batches = bn_batches
        self.batch_size = batch_size
        self.seconds = 0.0
        self.calls = 0

    @classmethod
    def of(
        cls,
        supernet: nn.Module,
        dataset_train: MultimodalDataset,
        dataset_val: MultimodalDataset,
        modality: str,
        **options: int,
    ) -> SubnetScorer:
        return cls(supernet, ModalityData.of(dataset_train, dataset_val, modality), **options)

    def score(self, config: Mapping[str, Any]) -> float:
        """The task's metric in [0, 1] of ``config`` on the validation split."""
        start = time.perf_counter()
        value = subnet_metric(
            self.supernet, config, self.data, self.batch_size, self.bn_batches, self.precision
        )
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return value

    @property
    def seconds_per_score(self) -> float:
        return self.seconds / max(self.calls, 1)
