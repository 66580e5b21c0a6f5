"""Stage 2: DARTS over the fusion micro-architecture, with the hardware loss in the architecture
step (eq. 11) — the paper's own code computes it but updates α, β, γ on cross-entropy alone.

Backbones are frozen, so their candidate features are computed once (``cached``) and only the
adapters, the relaxed fusion network and the head train. Weights learn on the training split;
architecture parameters on the validation split, with

    L = L_task^a + λ · (L̂_lat^b + L̂_energy^c),

    L̂_m = 1/(C·D) · Σ_p Σ_d Σ_f softmax(γ_p[d])_f · ĉ_m(f),
    ĉ_m(f) = (m(f) − min m) / (max m − min m),

where m(f) is operator f's latency (or energy) from the LUT and min/max run over the operators
searched. So each node's operator costs lie in [0, 1] whatever the device (the cheapest operator
0, the dearest 1), L̂ is their γ-expected mean over the nodes (in [0, 1] for any C × D: the same
authors' code min-max normalises the summed cost between C·D·min and C·D·max, which is the same
number), and λ (``hw_weight``, ``--hw-weight``) sets on purpose how much a whole step from the
cheapest to the dearest operator weighs against the task loss. Eq. (11) leaves the scale open;
dividing by the all-``Sum`` cost (our earlier choice) made the hardware gradient on γ 48–111× the
task gradient at initialisation on the paper's own TX2 table, and the search derived ``Sum``
everywhere whatever the task needed. The default λ was chosen by measurement
(docs/internals.md, "Stage 2's hardware loss"). An exponent of 0 or λ = 0 turns a term off.

An estimated energy (latency × nominal power, no meter) is left out of the loss: normalised, it
is the latency term again and would only double its weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hnas_edge.accelerator import FP32, Precision
from hnas_edge.errors import ConfigError
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.fusion import SEARCHED_OPS, FeatureAdapter, Genotype, check_operators
from hnas_edge.space.mmnn import MultimodalNet, candidates
from hnas_edge.space.presets import SpacePreset
from hnas_edge.space.relaxed import (
    RelaxedFusionNetwork,
    adapt_tokens,
    adapter_input,
    expected_cost,
    operator_costs,
)
from hnas_edge.space.specs import FUSION_OPS, FusionOpSpec
from hnas_edge.torch_state import seeded
from hnas_edge.train.sandwich import task_loss

#: λ, the weight of the normalised hardware terms (see the module docstring for how it was chosen).
DEFAULT_HW_WEIGHT = 0.1


@dataclass(frozen=True)
class DartsConfig:
    epochs: int = 3
    batch_size: int = 64
    lr_weights: float = 1e-3
    lr_weights_min: float | None = None  # cosine annealing of the weights' rate to it; None: flat
    lr_arch: float = 3e-3
    a: float = 1.0  # exponent of the task loss
    b: float = 1.0  # exponent of the latency loss (0: off)
    c: float = 1.0  # exponent of the energy loss (0: off)
    hw_weight: float = DEFAULT_HW_WEIGHT  # λ (0: off)
    operators: tuple[str, ...] = SEARCHED_OPS
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "operators", check_operators(self.operators))
        numbers = {
            "--hw-weight": self.hw_weight,
            "--a": self.a,
            "--b": self.b,
            "--c": self.c,
            "--lr-weights": self.lr_weights,
            "--lr-arch": self.lr_arch,
        }
        for flag, value in numbers.items():
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{flag} {value}: give a finite number ≥ 0")
        if self.lr_weights_min is not None and not 0 <= self.lr_weights_min <= self.lr_weights:
            raise ConfigError(
                f"minimum weight learning rate {self.lr_weights_min}: give one in "
                f"[0, {self.lr_weights}]"
            )

    @property
    def hardware(self) -> bool:
        """Whether the architecture step sees any hardware term."""
        return self.hw_weight > 0 and (self.b > 0 or self.c > 0)


@dataclass(frozen=True)
class OperatorCosts:
    """Latency (ms) and energy (mJ) of each fusion operator at the preset's (C, L); energy None
    where the LUT has none, or only an estimate (see the module docstring)."""

    latency: Mapping[str, float]
    energy: Mapping[str, float] | None

    @classmethod
    def from_lut(cls, lut: Lut, C: int, L: int) -> OperatorCosts:
        keys = {op: FusionOpSpec(op, C, L).key for op in FUSION_OPS}
        latency = {op: lut.latency_ms(key) for op, key in keys.items()}
        energies = {op: lut.energy_mj(key) for op, key in keys.items()}
        measured = not lut.is_estimated_energy() and None not in energies.values()
        return cls(latency, energies if measured else None)  # type: ignore[arg-type]


class FusionSupernet(nn.Module):
    """Adapters for every candidate feature, the relaxed fusion network and the head."""

    def __init__(
        self,
        shapes: list[tuple[int, ...]],
        n_classes: int,
        C: int,
        L: int,
        cells: int,
        nodes: int,
        operators: tuple[str, ...] = SEARCHED_OPS,
        sources: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.sources = sources  # the modality of each input: the derived network reads them all
        self.adapters = nn.ModuleList(FeatureAdapter(shape, C, L) for shape in shapes)
        self.relaxed = RelaxedFusionNetwork(len(shapes), cells, nodes, C, L, operators)
        self.head = nn.Linear(C * L, n_classes)

    @classmethod
    def of(
        cls,
        preset: SpacePreset,
        cells: int,
        nodes: int,
        operators: tuple[str, ...] = SEARCHED_OPS,
    ) -> FusionSupernet:
        """Over every fusion candidate feature of ``preset``'s backbones, in pool order."""
        pool = candidates(preset)
        C, L = preset.fusion_C, preset.fusion_L
        shapes, sources = [c.shape for c in pool], [c.modality for c in pool]
        return cls(shapes, preset.n_classes, C, L, cells, nodes, operators, sources)

    def derive(self) -> Genotype:
        """The discrete fusion network, reading every modality (see
        :meth:`RelaxedFusionNetwork.derive`)."""
        return self.relaxed.derive(self.sources)

    @torch.no_grad()
    def hand_down(self, net: MultimodalNet) -> None:
        """Start the derived network ``net`` from what the search trained, not from scratch: the
        adapters of the features it reads, each live node's chosen operator and the head.

        The fine-tune then continues where DARTS left off (the weights saw ``epochs`` epochs of
        the training split already) instead of spending its few epochs relearning adapters.
        """
        for i in net.used:
            net.adapters[str(i)].load_state_dict(self.adapters[i].state_dict())
        relaxed = self.relaxed
        for p, cell in enumerate(net.fusion.genotype.cells):
            for d, node in enumerate(cell.nodes):
                mixed = relaxed.mixed[p * relaxed.n_nodes + d]
                chosen = mixed.ops[relaxed.operators.index(node.op)]
                net.fusion.ops[p][d].load_state_dict(chosen.state_dict())
        net.head.linear.load_state_dict(self.head.state_dict())

    def prepare(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """What the adapters read of frozen candidate features (a whole split), computed once:
        pooling has no weights, so DARTS need not pool every batch again."""
        return [adapter_input(a, x) for a, x in zip(self.adapters, features, strict=True)]

    def forward_prepared(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        """Logits from a batch of :meth:`prepare`'s output; the fusion runs on tokens (B, L, C)
        and the head reads them in the discrete network's (B, C, L) order."""
        adapted = [adapt_tokens(a, x) for a, x in zip(self.adapters, prepared, strict=True)]
        fused = self.relaxed.forward_tokens(adapted)
        return self.head(fused.transpose(1, 2).flatten(1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.forward_prepared(self.prepare(features))

    def weight_parameters(self) -> list[nn.Parameter]:
        return [
            *self.adapters.parameters(),
            *self.relaxed.weight_parameters(),
            *self.head.parameters(),
        ]

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.relaxed.arch_parameters()


def normalised_costs(net: RelaxedFusionNetwork, cost_of_op: Mapping[str, float]) -> torch.Tensor:
    """ĉ(f): the searched operators' costs min–max scaled to [0, 1] (all 0 if they are equal)."""
    costs = operator_costs(net, cost_of_op)
    spread = costs.max() - costs.min()
    return (costs - costs.min()) / spread if spread > 0 else torch.zeros_like(costs)


def normalised_expected_cost(
    net: RelaxedFusionNetwork, cost_of_op: Mapping[str, float]
) -> torch.Tensor:
    """L̂: the γ-expected normalised operator cost, averaged over the nodes (in [0, 1])."""
    return (net.op_weights() * normalised_costs(net, cost_of_op)).sum(-1).mean()


def hardware_loss(
    net: RelaxedFusionNetwork, costs: OperatorCosts, config: DartsConfig
) -> torch.Tensor:
    """λ · (L̂_lat^b + L̂_energy^c); zero without a gradient when the hardware is off."""
    total = torch.zeros((), device=net.gamma[0].device)
    if not config.hardware:
        return total
    for table, exponent in ((costs.latency, config.b), (costs.energy, config.c)):
        if table is None or exponent == 0:
            continue
        # L̂ is 0 when γ sits wholly on the cheapest operator: keep x**b differentiable there
        total = total + normalised_expected_cost(net, table).clamp_min(1e-12) ** exponent
    return config.hw_weight * total


def architecture_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    task: str,
    net: RelaxedFusionNetwork,
    costs: OperatorCosts,
    config: DartsConfig,
) -> torch.Tensor:
    return task_loss(logits, labels, task) ** config.a + hardware_loss(net, costs, config)


def _batches(n: int, size: int, generator: torch.Generator, device: torch.device):
    """Batch indices on ``device``, in an order drawn on the CPU (the same on every device)."""
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, size):
        yield order[start : start + size]


def cosine_schedule(
    optimizer: torch.optim.Optimizer, config: DartsConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The weights' rate annealed per step from ``lr_weights`` to ``lr_weights_min``; None when
    the rate stays flat."""
    if config.lr_weights_min is None:
        return None
    total = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total, config.lr_weights_min)


def search_fusion(
    supernet: FusionSupernet,
    train: tuple[list[torch.Tensor], torch.Tensor],
    val: tuple[list[torch.Tensor], torch.Tensor],
    task: str,
    costs: OperatorCosts,
    config: DartsConfig,
    precision: Precision = FP32,
) -> tuple[Genotype, list[dict[str, float]]]:
    """Alternate weight steps (train split) and architecture steps (validation split); derive.

    Every step runs on the device of ``supernet`` and the cached features (one device for all),
    its forward pass in ``precision``; the losses and the hardware term in fp32.

    Each backward pass computes the gradients of the parameters its step updates only: the
    architecture step needs no weight gradients (the costliest part of its backward pass) and
    the weight step no architecture gradients.
    """
    generator = torch.Generator().manual_seed(config.seed)
    weights, arch = supernet.weight_parameters(), supernet.arch_parameters()
    w_opt = torch.optim.Adam(weights, lr=config.lr_weights, weight_decay=1e-4)
    a_opt = torch.optim.Adam(arch, lr=config.lr_arch, betas=(0.5, 0.999))
    (train_x, train_y), (val_x, val_y) = train, val
    train_x, val_x = supernet.prepare(train_x), supernet.prepare(val_x)
    schedule = cosine_schedule(w_opt, config, -(-len(train_y) // config.batch_size))

    def logits_of(split: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        return precision.forward(lambda: supernet.forward_prepared([x[index] for x in split]))

    with seeded(config.seed):  # any draw of the steps; the caller's stream is left as it was
        history = []
        for epoch in range(config.epochs):
            supernet.train()
            val_iter = _batches(len(val_y), config.batch_size, generator, val_y.device)
            for index in _batches(len(train_y), config.batch_size, generator, train_y.device):
                w_opt.zero_grad(set_to_none=True)
                loss = task_loss(logits_of(train_x, index), train_y[index], task)
                loss.backward(inputs=weights)
                w_opt.step()
                if schedule is not None:
                    schedule.step()
                v_index = next(val_iter, None)
                if v_index is None:
                    val_iter = _batches(len(val_y), config.batch_size, generator, val_y.device)
                    v_index = next(val_iter)
                a_opt.zero_grad(set_to_none=True)
                architecture_loss(
                    logits_of(val_x, v_index), val_y[v_index], task, supernet.relaxed, costs, config
                ).backward(inputs=arch)
                a_opt.step()
            with torch.no_grad():
                expected = expected_cost(supernet.relaxed, costs.latency).item()
            history.append({"epoch": epoch + 1, "expected_fusion_latency_ms": expected})
    return supernet.derive(), history
