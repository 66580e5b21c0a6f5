"""One training step of a supernet: the sandwich rule with in-place distillation (eq. 2–4).

Per batch: the largest subnet learns from the labels; the smallest and ``n_random`` random
subnets learn from the largest subnet's (detached) predictions. Gradients of all of them are
accumulated, then one optimiser step updates the shared weights.

Forward passes run under ``precision`` (:class:`~hnas_edge.accelerator.Precision`); losses and
backward passes take fp32 logits.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from hnas_edge.accelerator import FP32, Precision
from hnas_edge.space.ofa import OFASupernet


def task_loss(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "multiclass":
        return F.cross_entropy(logits, y)
    return F.binary_cross_entropy_with_logits(logits, y)


def distillation_loss(
    logits: torch.Tensor, teacher: torch.Tensor, task: str, temperature: float
) -> torch.Tensor:
    """KL to the teacher's softened distribution (multiclass) or BCE to its probabilities."""
    if task == "multiclass":
        t = temperature
        return F.kl_div(
            F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean"
        ) * (t * t)
    return F.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher))


def sandwich_step(
    net: OFASupernet,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    rng: random.Random,
    n_random: int,
    task: str,
    temperature: float = 1.0,
    precision: Precision = FP32,
) -> float:
    """One optimiser step; returns the largest subnet's task loss."""
    net.train()
    optimizer.zero_grad(set_to_none=True)
    net.set_active(net.max_config())
    logits = precision.forward(lambda: net(x))
    loss = task_loss(logits, y, task)
    loss.backward()
    teacher = logits.detach()
    for config in [net.min_config(), *(net.sample_config(rng) for _ in range(n_random))]:
        net.set_active(config)
        student = precision.forward(lambda: net(x))
        distillation_loss(student, teacher, task, temperature).backward()
    optimizer.step()
    net.set_active(net.max_config())
    return loss.item()


def plain_step(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    task: str,
    precision: Precision = FP32,
) -> float:
    """A fixed network (the text backbone): an ordinary supervised step."""
    net.train()
    optimizer.zero_grad(set_to_none=True)
    loss = task_loss(precision.forward(lambda: net(x)), y, task)
    loss.backward()
    optimizer.step()
    return loss.item()
