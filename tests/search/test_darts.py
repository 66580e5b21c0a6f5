"""Stage 2: the hardware loss reaches the architecture parameters."""

from __future__ import annotations

import torch

from hnas_edge.search.darts import (
    DartsConfig,
    FusionSupernet,
    OperatorCosts,
    architecture_loss,
    search_fusion,
)
from hnas_edge.space.presets import get_preset
from hnas_edge.space.specs import FUSION_OPS

#: Sum is free, CatConvMish dear: a hardware loss should push γ away from CatConvMish.
COSTS = OperatorCosts(
    latency={op: 0.1 + i for i, op in enumerate(FUSION_OPS)},
    energy={op: 0.2 + 2 * i for i, op in enumerate(FUSION_OPS)},
)


def small_preset():
    from dataclasses import replace

    return replace(get_preset("avmnist"), fusion_C=8)


def features(preset, n):
    torch.manual_seed(0)
    return [torch.randn(n, *c) for c in (c.shape for c in FusionSupernet(preset, 1, 1).pool)]


def gamma_gradient(config: DartsConfig) -> torch.Tensor:
    preset = small_preset()
    torch.manual_seed(0)
    net = FusionSupernet(preset, cells=1, nodes=2)
    x, y = features(preset, 8), torch.randint(0, 10, (8,))
    architecture_loss(net(x), y, "multiclass", net.relaxed, COSTS, config).backward()
    return net.relaxed.gamma[0].grad.clone()


def test_the_hardware_loss_changes_the_operator_gradient_when_on_and_not_when_off():
    task_only = gamma_gradient(DartsConfig(b=0, c=0))
    with_latency = gamma_gradient(DartsConfig(b=1, c=0))
    with_both = gamma_gradient(DartsConfig(b=1, c=1))
    assert torch.allclose(task_only, gamma_gradient(DartsConfig(b=0, c=0)))
    assert not torch.allclose(task_only, with_latency)
    assert not torch.allclose(with_latency, with_both)
    dear = FUSION_OPS.index("CatConvMish")
    # descending the gradient must lower the dear operator's weight more with the hardware term
    assert (with_latency - task_only)[:, dear].gt(0).all()


def test_the_hardware_loss_steers_the_search_to_cheaper_operators():
    preset = small_preset()
    n = 64
    train = (features(preset, n), torch.randint(0, 10, (n,)))
    val = (features(preset, n), torch.randint(0, 10, (n,)))
    chosen = {}
    for name, b in (("off", 0.0), ("on", 2.0)):
        torch.manual_seed(0)
        net = FusionSupernet(preset, cells=1, nodes=2)
        config = DartsConfig(epochs=4, batch_size=16, lr_arch=0.05, b=b, c=0)
        genotype, history = search_fusion(net, train, val, "multiclass", COSTS, config)
        assert len(history) == 4 and len(genotype.ops()) == 2
        chosen[name] = history[-1]["expected_fusion_latency_ms"]
    assert chosen["on"] < 0.9 * chosen["off"]
