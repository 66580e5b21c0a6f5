"""Train the fusion part of a multimodal network on frozen backbones.

Backbones do not change, so the features the fusion network reads are computed once and cached;
only the adapters, the fusion network and the head train (what stage 2 of the search also does).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hnas_edge.accelerator import FP32, Precision
from hnas_edge.data.metrics import score
from hnas_edge.space.mmnn import MultimodalNet
from hnas_edge.train.sandwich import task_loss

#: Cached candidate features of a split (``features[i]``: candidate ``i``) and its targets.
Split = tuple[dict[int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def cached_features(
    net: MultimodalNet, inputs: dict[str, torch.Tensor], batch: int = 256
) -> dict[int, torch.Tensor]:
    """The candidate features the fusion network reads, for every sample."""
    chunks: dict[int, list[torch.Tensor]] = {i: [] for i in net.used}
    n = len(next(iter(inputs.values())))
    for start in range(0, n, batch):
        part = {m: x[start : start + batch] for m, x in inputs.items()}
        for m, index in net.deepest.items():
            features = net.backbones[m].eval().forward_features(part[m], upto=index)
            for i in net.used:
                if net.pool[i].modality == m:
                    chunks[i].append(features[net.pool[i].index])
    return {i: torch.cat(c) for i, c in chunks.items()}


def _logits(
    net: MultimodalNet, features: dict[int, torch.Tensor], precision: Precision = FP32
) -> torch.Tensor:
    """fp32 logits of the fusion part, computed in ``precision``."""

    def logits() -> torch.Tensor:
        adapted: list[torch.Tensor | None] = [None] * len(net.pool)
        for i, x in features.items():
            adapted[i] = net.adapters[str(i)](x)
        return net.head(net.fusion(adapted))

    return precision.forward(logits)


def train_fusion(
    net: MultimodalNet,
    train: tuple[dict[str, torch.Tensor], torch.Tensor],
    epochs: int,
    task: str,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train adapters, fusion and head with frozen backbones; returns the loss per epoch."""
    features = cached_features(net, train[0])
    return fit_fusion(net, features, train[1], epochs, task, batch_size, lr, seed)


def fit_fusion(
    net: MultimodalNet,
    features: dict[int, torch.Tensor],
    labels: torch.Tensor,
    epochs: int,
    task: str,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    val: Split | None = None,
    precision: Precision = FP32,
) -> list[float]:
    """:func:`train_fusion` on features already computed (``features[i]``: candidate ``i``),
    forward passes in ``precision``.

    Features, labels and ``net`` are on one device, where every step runs; the batch order is
    drawn on the CPU (the same on every device). With ``val`` (features, targets), the weights
    kept are those of the epoch — the start included — with the best validation metric: a few
    epochs at a fixed rate can overshoot, and a network handed down from DARTS may already be
    better than after another epoch.
    """
    trainable = [*net.adapters.parameters(), *net.fusion.parameters(), *net.head.parameters()]
    optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    modules: list[nn.Module] = [net.adapters, net.fusion, net.head]
    best = _Best(net, val, task, precision)
    history = []
    for _ in range(epochs):
        for module in modules:
            module.train()
        order = torch.randperm(len(labels), generator=generator).to(labels.device)
        losses = []
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            batch = {i: features[i][index] for i in net.used}
            loss = task_loss(_logits(net, batch, precision), labels[index], task)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
        best.consider(net)
    best.restore(net)
    net.eval()
    return history


class _Best:
    """The fusion weights with the best validation metric seen (nothing kept without ``val``)."""

    def __init__(
        self, net: MultimodalNet, val: Split | None, task: str, precision: Precision
    ) -> None:
        self.val, self.task, self.precision = val, task, precision
        self.score, self.state = -math.inf, None
        self.consider(net)

    def consider(self, net: MultimodalNet) -> None:
        if self.val is None:
            return
        score = metric_on_features(net, self.val[0], self.val[1], self.task, self.precision)
        if score > self.score:
            self.score = score
            self.state = {k: v.clone() for k, v in fusion_state(net).items()}

    def restore(self, net: MultimodalNet) -> None:
        if self.state is not None:
            net.load_state_dict(self.state, strict=False)


def fusion_state(net: MultimodalNet) -> dict[str, torch.Tensor]:
    """The weights stage 2 trains: adapters, fusion network and head (not the backbones)."""
    return {k: v for k, v in net.state_dict().items() if not k.startswith("backbones.")}


@torch.no_grad()
def fused_metric(
    net: MultimodalNet, data: tuple[dict[str, torch.Tensor], torch.Tensor], task: str
) -> float:
    """The task's metric of ``net`` on a whole split (inputs per modality, targets)."""
    return metric_on_features(net, cached_features(net, data[0]), data[1], task)


@torch.no_grad()
def metric_on_features(
    net: MultimodalNet,
    features: dict[int, torch.Tensor],
    labels: torch.Tensor,
    task: str,
    precision: Precision = FP32,
) -> float:
    """:func:`fused_metric` on features already computed, in ``precision``."""
    net.eval()
    logits = _logits(net, {i: features[i] for i in net.used}, precision)
    return score(logits.cpu().numpy(), labels.cpu().numpy(), task)
