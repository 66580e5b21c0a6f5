"""Batch-norm recalibration and evaluation of one subnet with the task's metric."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hnas_edge.accelerator import FP32, Precision
from hnas_edge.data.metrics import score
from hnas_edge.train.batches import ModalityData, batches


@torch.no_grad()
def recalibrate_bn(net: nn.Module, x: torch.Tensor, batch_size: int, n_batches: int) -> None:
    """Re-estimate batch-norm statistics for the active subnet from training batches.

    A supernet's statistics are those of whichever subnets trained last; a sampled subnet needs
    its own (cumulative average over ``n_batches``, momentum None), then eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    shuffle = torch.Generator().manual_seed(0)  # the same batches for every subnet
    for i, (xb, _) in enumerate(batches(x, x.new_zeros(len(x)), batch_size, shuffle)):
        if i >= n_batches:
            break
        net(xb)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    net.eval()


@torch.no_grad()
def task_metric(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, batch: int = 256
) -> float:
    """The task's metric (accuracy or weighted F1, :func:`hnas_edge.data.metrics.score`) of
    ``net`` on a whole split: logits batch by batch (on the device of ``net`` and ``x``), scored
    once on the CPU."""
    net.eval()
    logits = torch.cat([net(xb).float() for xb, _ in batches(x, y, batch)])
    return score(logits.cpu().numpy(), y.cpu().numpy(), task)


def subnet_metric(
    net: nn.Module,
    config: Mapping[str, Any],
    data: ModalityData,
    batch_size: int,
    bn_batches: int,
    precision: Precision = FP32,
) -> float:
    """Validation metric of one subnet of ``net`` (a
    :class:`~hnas_edge.space.modality.ModalityNetwork`; a fixed network's config is ``{}``)
    after batch-norm recalibration on ``bn_batches`` training batches, both under
    ``precision``."""
    net.set_active(config)
    with precision.autocast():
        recalibrate_bn(net, data.train[0], batch_size, bn_batches)
        return task_metric(net, *data.val, data.task)
