"""Stage 2: DARTS over the fusion micro-architecture, with the hardware loss in the architecture
step (eq. 11) — the paper's own code computes it but updates α, β, γ on cross-entropy alone.

Backbones are frozen, so their candidate features are computed once (``cached``) and only the
adapters, the relaxed fusion network and the head train. Weights learn on the training split;
architecture parameters on the validation split, with

    L = L_task^a + L_lat^b + L_energy^c,

where L_lat and L_energy are the γ-expected costs of the fusion operators from the LUT, divided by
the cost of the cheapest all-``Sum`` network so that milliseconds and millijoules are on the
scale of a loss. An exponent of 0 turns its term off (a constant carries no gradient).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hnas_edge.profiling.lut import Lut
from hnas_edge.space.fusion import FeatureAdapter, Genotype, RelaxedFusionNetwork, expected_cost
from hnas_edge.space.mmnn import candidates
from hnas_edge.space.presets import SpacePreset
from hnas_edge.space.specs import FUSION_OPS, FusionOpSpec
from hnas_edge.train.sandwich import task_loss


@dataclass(frozen=True)
class DartsConfig:
    epochs: int = 3
    batch_size: int = 64
    lr_weights: float = 1e-3
    lr_arch: float = 3e-3
    a: float = 1.0  # exponent of the task loss
    b: float = 1.0  # exponent of the latency loss (0: off)
    c: float = 1.0  # exponent of the energy loss (0: off)
    seed: int = 0


@dataclass(frozen=True)
class OperatorCosts:
    """Latency (ms) and energy (mJ) of each fusion operator at the preset's (C, L)."""

    latency: Mapping[str, float]
    energy: Mapping[str, float] | None

    @classmethod
    def from_lut(cls, lut: Lut, C: int, L: int) -> OperatorCosts:
        keys = {op: FusionOpSpec(op, C, L).key for op in FUSION_OPS}
        latency = {op: lut.latency_ms(key) for op, key in keys.items()}
        energies = {op: lut.energy_mj(key) for op, key in keys.items()}
        energy = None if any(v is None for v in energies.values()) else energies
        return cls(latency, energy)  # type: ignore[arg-type]


class FusionSupernet(nn.Module):
    """Adapters for every candidate feature, the relaxed fusion network and the head."""

    def __init__(self, preset: SpacePreset, cells: int, nodes: int) -> None:
        super().__init__()
        self.pool = candidates(preset)
        C, L = preset.fusion_C, preset.fusion_L
        self.adapters = nn.ModuleList(FeatureAdapter(c.shape, C, L) for c in self.pool)
        self.relaxed = RelaxedFusionNetwork(len(self.pool), cells, nodes, C, L)
        self.head = nn.Linear(C * L, preset.n_classes)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        adapted = [adapter(x) for adapter, x in zip(self.adapters, features, strict=True)]
        return self.head(torch.flatten(self.relaxed(adapted), 1))

    def weight_parameters(self) -> list[nn.Parameter]:
        return [
            *self.adapters.parameters(),
            *self.relaxed.weight_parameters(),
            *self.head.parameters(),
        ]

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.relaxed.arch_parameters()


def hardware_loss(
    net: RelaxedFusionNetwork, costs: OperatorCosts, config: DartsConfig
) -> torch.Tensor:
    """L_lat^b + L_energy^c of eq. (11), each normalised by its all-``Sum`` cost."""
    n_nodes = net.n_cells * net.n_nodes
    total = torch.zeros(())
    terms = [(costs.latency, config.b), (costs.energy, config.c)]
    for table, exponent in terms:
        if table is None or exponent == 0:
            continue
        floor = max(table["Sum"] * n_nodes, 1e-9)
        total = total + (expected_cost(net, table) / floor) ** exponent
    return total


def architecture_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    task: str,
    net: RelaxedFusionNetwork,
    costs: OperatorCosts,
    config: DartsConfig,
) -> torch.Tensor:
    return task_loss(logits, labels, task) ** config.a + hardware_loss(net, costs, config)


def _batches(n: int, size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, size):
        yield order[start : start + size]


def search_fusion(
    supernet: FusionSupernet,
    train: tuple[list[torch.Tensor], torch.Tensor],
    val: tuple[list[torch.Tensor], torch.Tensor],
    task: str,
    costs: OperatorCosts,
    config: DartsConfig,
) -> tuple[Genotype, list[dict[str, float]]]:
    """Alternate weight steps (train split) and architecture steps (validation split); derive."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    w_opt = torch.optim.Adam(supernet.weight_parameters(), lr=config.lr_weights, weight_decay=1e-4)
    a_opt = torch.optim.Adam(supernet.arch_parameters(), lr=config.lr_arch, betas=(0.5, 0.999))
    (train_x, train_y), (val_x, val_y) = train, val
    history = []
    for epoch in range(config.epochs):
        supernet.train()
        val_iter = _batches(len(val_y), config.batch_size, generator)
        for index in _batches(len(train_y), config.batch_size, generator):
            w_opt.zero_grad(set_to_none=True)
            task_loss(supernet([x[index] for x in train_x]), train_y[index], task).backward()
            w_opt.step()
            v_index = next(val_iter, None)
            if v_index is None:
                val_iter = _batches(len(val_y), config.batch_size, generator)
                v_index = next(val_iter)
            a_opt.zero_grad(set_to_none=True)
            logits = supernet([x[v_index] for x in val_x])
            architecture_loss(
                logits, val_y[v_index], task, supernet.relaxed, costs, config
            ).backward()
            a_opt.step()
        with torch.no_grad():
            expected = expected_cost(supernet.relaxed, costs.latency).item()
        history.append({"epoch": epoch + 1, "expected_fusion_latency_ms": expected})
    return supernet.relaxed.derive(), history
