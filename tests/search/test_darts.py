"""Stage 2: the hardware loss reaches the architecture parameters, on a scale set on purpose."""

from __future__ import annotations

import pytest
import torch

from hnas_edge.errors import ConfigError
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.darts import (
    DartsConfig,
    FusionSupernet,
    OperatorCosts,
    architecture_loss,
    cosine_schedule,
    hardware_loss,
    normalised_costs,
    search_fusion,
)
from hnas_edge.space.fusion import SEARCHED_OPS
from hnas_edge.space.relaxed import RelaxedFusionNetwork
from hnas_edge.space.specs import FUSION_OPS, FusionOpSpec

#: Operator latencies as a 2-core CPU measured them (ms, C=192, L=16): Sum nearly free,
#: CatConvMish the dearest, 18× Sum.
CPU_LATENCY = {
    "Sum": 0.0058,
    "ScaleDotAttn": 0.0122,
    "LinearGLU": 0.0403,
    "ConcatFC": 0.0363,
    "SE1": 0.0143,
    "SE2": 0.0142,
    "CatConvMish": 0.1082,
}
COSTS = OperatorCosts(
    latency=CPU_LATENCY, energy={op: 3 * v + 0.1 for op, v in CPU_LATENCY.items()}
)
DEAR = SEARCHED_OPS.index("CatConvMish")


def pool_features(n: int, dim: int = 4, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Two flat features whose label is [x₀·y₀ > 0]: no sum of a function of X and one of Y can
    compute it, so only an operator that multiplies or mixes them non-linearly helps."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    return [x, y], (x[:, 0] * y[:, 0] > 0).long()


def supernet(cells: int = 1, nodes: int = 1, seed: int = 0) -> FusionSupernet:
    torch.manual_seed(seed)
    return FusionSupernet([(4,), (4,)], n_classes=2, C=8, L=4, cells=cells, nodes=nodes)


def derive(hw_weight: float, cells: int = 1, nodes: int = 1, seed: int = 0, **config):
    config = DartsConfig(epochs=8, batch_size=64, hw_weight=hw_weight, seed=seed, **config)
    train, val = pool_features(512, seed=1), pool_features(256, seed=2)
    return search_fusion(supernet(cells, nodes, seed), train, val, "multiclass", COSTS, config)


def gamma_gradient(config: DartsConfig, nodes: int = 2) -> torch.Tensor:
    net = supernet(nodes=nodes)
    x, y = pool_features(16)
    architecture_loss(net(x), y, "multiclass", net.relaxed, COSTS, config).backward()
    return net.relaxed.gamma[0].grad.clone()


def test_each_operator_cost_is_scaled_to_0_for_the_cheapest_and_1_for_the_dearest():
    net = RelaxedFusionNetwork(n_inputs=2, cells=1, nodes=1, C=8, L=4)
    scaled = normalised_costs(net, CPU_LATENCY)
    assert scaled[SEARCHED_OPS.index("Sum")] == 0 and scaled[DEAR] == 1
    assert scaled.min() >= 0 and scaled.max() <= 1
    flat = normalised_costs(net, dict.fromkeys(FUSION_OPS, 2.0))
    assert flat.eq(0).all()  # equal costs: nothing to prefer, no gradient


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (4, 4)])
def test_the_hardware_term_stays_in_0_to_lambda_whatever_the_number_of_nodes(shape):
    net = RelaxedFusionNetwork(n_inputs=2, cells=shape[0], nodes=shape[1], C=8, L=4)
    config = DartsConfig(hw_weight=0.5, c=0)
    with torch.no_grad():
        for gamma in net.gamma:
            gamma.zero_()  # every operator equally likely
    uniform = normalised_costs(net, CPU_LATENCY).mean()
    assert hardware_loss(net, COSTS, config).item() == pytest.approx(0.5 * uniform.item())
    with torch.no_grad():
        for gamma in net.gamma:
            gamma.fill_(-50.0)
            gamma[:, DEAR] = 50.0  # every node on the dearest operator
    assert hardware_loss(net, COSTS, config).item() == pytest.approx(0.5, rel=1e-4)


def test_the_hardware_loss_changes_the_operator_gradient_when_on_and_not_when_off():
    task_only = gamma_gradient(DartsConfig(b=0, c=0))
    with_latency = gamma_gradient(DartsConfig(b=1, c=0))
    with_both = gamma_gradient(DartsConfig(b=1, c=1))
    assert torch.equal(task_only, gamma_gradient(DartsConfig(b=0, c=0)))
    assert not torch.allclose(task_only, with_latency)
    assert not torch.allclose(with_latency, with_both)
    # descending the gradient must lower the dear operator's weight more with the hardware term
    assert (with_latency - task_only)[:, DEAR].gt(0).all()


def test_a_zero_hardware_weight_is_the_same_search_as_zero_exponents():
    assert torch.equal(
        gamma_gradient(DartsConfig(hw_weight=0)), gamma_gradient(DartsConfig(b=0, c=0))
    )
    assert derive(0.0) == derive(0.1, b=0, c=0)


def test_at_the_default_weight_the_search_still_derives_the_operator_the_task_needs():
    for cells, nodes in ((1, 1), (1, 2)):
        genotype, _ = derive(DartsConfig().hw_weight, cells, nodes)
        assert any(op != "Sum" for op in genotype.live_ops()), genotype


def test_a_very_large_weight_makes_every_node_the_cheapest_operator():
    genotype, history = derive(100.0, 1, 2)
    assert genotype.ops() == ["Sum", "Sum"]
    assert history[-1]["expected_fusion_latency_ms"] < history[0]["expected_fusion_latency_ms"]


def test_the_same_seed_derives_the_same_network():
    first, second = derive(DartsConfig().hw_weight, 1, 2), derive(DartsConfig().hw_weight, 1, 2)
    assert first == second


def test_se2_is_priced_but_not_searched_by_default():
    assert "SE2" not in DartsConfig().operators and "SE2" in FUSION_OPS
    net = supernet(nodes=2)
    assert net.relaxed.operators == SEARCHED_OPS
    assert net.relaxed.gamma[0].shape == (2, len(SEARCHED_OPS))
    every = DartsConfig(operators=FUSION_OPS)
    assert every.operators == FUSION_OPS
    with pytest.raises(ConfigError, match="distinct names"):
        DartsConfig(operators=("Sum", "Sum"))
    with pytest.raises(ConfigError, match="distinct names"):
        DartsConfig(operators=("Sum", "Max"))


@pytest.mark.parametrize("field", ["hw_weight", "lr_arch", "b"])
def test_a_negative_or_infinite_setting_is_refused(field):
    for value in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="finite number"):
            DartsConfig(**{field: value})


def test_the_paper_schedule_anneals_the_weight_rate_to_its_minimum():
    config = DartsConfig(epochs=2, lr_weights=1e-4, lr_weights_min=1e-6, batch_size=64)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.lr_weights)
    schedule = cosine_schedule(opt, config, steps_per_epoch=2)
    for _ in range(4):  # epochs × steps per epoch, as search_fusion steps it
        opt.step()
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)
    assert cosine_schedule(opt, DartsConfig(), 2) is None  # the small budget: a flat rate


def test_an_estimated_energy_is_left_out_of_the_loss(tmp_path):
    def lut(source: str) -> Lut:
        entries = {
            FusionOpSpec(op, 8, 4).key: {
                "latency_ms": {"median": v},
                "energy_mj": {"total": 15 * v, "source": source, "estimate": source == "estimate"},
            }
            for op, v in CPU_LATENCY.items()
        }
        return Lut({"name": "x", "meter": source}, entries=entries)

    assert OperatorCosts.from_lut(lut("estimate"), 8, 4).energy is None
    assert OperatorCosts.from_lut(lut("rapl"), 8, 4).energy is not None
