"""Fusion: Table 2's operators, the adapter, the relaxed network and the genotype it derives."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from hnas_edge.errors import ConfigError
from hnas_edge.space.fusion import (
    AdaptiveMaxPool,
    CellGene,
    FeatureAdapter,
    FusionNetwork,
    Genotype,
    NodeGene,
    build_operator,
    random_genotype,
)
from hnas_edge.space.relaxed import RelaxedFusionNetwork, expected_cost
from hnas_edge.space.specs import FUSION_OPS, FusionOpSpec

C, L = 3, 4


@pytest.fixture
def xy():
    torch.manual_seed(0)
    return torch.randn(2, C, L), torch.randn(2, C, L)


def set_channel_linear(module, weight, bias=None):
    with torch.no_grad():
        module.conv.weight.copy_(weight.unsqueeze(-1))
        module.conv.bias.copy_(bias if bias is not None else torch.zeros(weight.shape[0]))


def per_position(x, weight):
    """X·W applied to the channels at each position, written out with einsum."""
    return torch.einsum("oc,bcl->bol", weight, x)


def test_sum_adds(xy):
    x, y = xy
    assert torch.equal(build_operator("Sum", C, L)(x, y), x + y)


def test_scaled_dot_attention_follows_its_formula_plus_x(xy):
    x, y = xy
    expected = torch.empty_like(x)
    for b in range(2):
        scores = x[b].T @ y[b] / math.sqrt(C)  # (L, L): position of X against position of Y
        expected[b] = x[b] + (torch.softmax(scores, dim=-1) @ y[b].T).T
    assert torch.allclose(build_operator("ScaleDotAttn", C, L)(x, y), expected, atol=1e-6)


def test_no_operator_drops_an_input_whose_positions_are_all_equal(xy):
    """A flat feature is repeated at every position; each operator's output must still depend
    on both inputs (attention over equal positions returns Y alone without its ``X +``)."""
    x, y = xy
    flat = y[:, :, :1].expand_as(y)
    for op in FUSION_OPS:
        node = build_operator(op, C, L).eval()
        for first, second in ((x, flat), (flat, x)):
            changed_first = node(first + 1.0, second)
            changed_second = node(first, second + 1.0)
            base = node(first, second)
            assert not torch.allclose(changed_first, base), (op, "ignores its first input")
            assert not torch.allclose(changed_second, base), (op, "ignores its second input")


def test_linear_glu_gates_x_by_sigmoid_of_y(xy):
    x, y = xy
    op = build_operator("LinearGLU", C, L)
    w1, w2 = torch.randn(C, C), torch.randn(C, C)
    set_channel_linear(op.w1, w1)
    set_channel_linear(op.w2, w2)
    expected = per_position(x, w1) * torch.sigmoid(per_position(y, w2))
    assert torch.allclose(op(x, y), expected, atol=1e-6)


def test_concat_fc_is_relu_of_a_linear_map_of_the_concatenation(xy):
    x, y = xy
    op = build_operator("ConcatFC", C, L)
    w, b = torch.randn(C, 2 * C), torch.randn(C)
    set_channel_linear(op.fc, w, b)
    expected = torch.relu(per_position(torch.cat([x, y], 1), w) + b[:, None])
    assert torch.allclose(op(x, y), expected, atol=1e-6)


@pytest.mark.parametrize(("name", "gate_from_x"), [("SE1", True), ("SE2", False)])
def test_squeeze_excitation_gates_one_input_by_the_others_mean(xy, name, gate_from_x):
    x, y = xy
    op = build_operator(name, C, L)
    w, b = torch.randn(C, C), torch.randn(C)
    with torch.no_grad():
        op.fc.weight.copy_(w)
        op.fc.bias.copy_(b)
    source, target = (x, y) if gate_from_x else (y, x)
    excitation = torch.sigmoid(source.mean(dim=2) @ w.T + b)
    assert torch.allclose(op(x, y), excitation[:, :, None] * target, atol=1e-6)


def test_cat_conv_mish_mixes_both_transformed_inputs(xy):
    x, y = xy
    op = build_operator("CatConvMish", C, L)
    w1, w2, w3 = torch.randn(C, C), torch.randn(C, C), torch.randn(C, 2 * C)
    for module, weight in ((op.w1, w1), (op.w2, w2), (op.mix, w3)):
        set_channel_linear(module, weight)
    mixed = per_position(torch.cat([per_position(x, w1), per_position(y, w2)], 1), w3)
    expected = mixed * torch.tanh(F.softplus(mixed))
    assert torch.allclose(op(x, y), expected, atol=1e-5)


def test_an_unknown_operator_is_refused_with_the_list():
    with pytest.raises(ConfigError, match="unknown fusion operator 'Max'; use one of Sum"):
        build_operator("Max", C, L)


@pytest.mark.parametrize("size", [1, 3, 5, 7, 8, 10, 14, 28, 56, 112])
def test_adapter_pooling_equals_adaptive_max_pooling(size):
    x = torch.randn(2, 3, size, size)
    for out in (3, 4):
        pool = AdaptiveMaxPool(size, size, out)
        assert torch.equal(pool(x), F.adaptive_max_pool2d(x, out))
        assert pool.state_dict() == {}  # indices are rebuilt, never saved


@pytest.mark.parametrize("in_shape", [(24, 7, 7), (16, 14, 14), (80,)])
def test_adapter_brings_maps_and_vectors_to_c_by_l(in_shape):
    adapter = FeatureAdapter(in_shape, 192, 16).eval()
    assert adapter(torch.randn(2, *in_shape)).shape == (2, 192, 16)


@pytest.mark.parametrize(("built_for", "given"), [((24, 5, 5), (24, 28, 28)), ((80,), (96,))])
def test_adapter_refuses_a_feature_of_another_size_instead_of_cropping_it(built_for, given):
    adapter = FeatureAdapter(built_for, 192, 16).eval()
    with pytest.raises(ConfigError, match=f"built for {'×'.join(map(str, built_for))} features "
                       f"but got {'×'.join(map(str, given))}"):  # fmt: skip
        adapter(torch.randn(2, *given))


def test_adapter_pooling_refuses_a_map_of_another_size():
    with pytest.raises(ConfigError, match="built for 7×7 features but got 8×8"):
        AdaptiveMaxPool(7, 7, 4)(torch.randn(1, 3, 8, 8))


def test_adapter_needs_a_square_l_for_maps():
    with pytest.raises(ConfigError, match="perfect square"):
        FeatureAdapter((8, 7, 7), 16, 10)


def dominated_network(op_index: int) -> RelaxedFusionNetwork:
    net = RelaxedFusionNetwork(n_inputs=3, cells=1, nodes=1, C=C, L=L)
    with torch.no_grad():
        net.gamma[0].zero_()
        net.gamma[0][0, op_index] = 30.0
    return net.eval()


def test_relaxed_node_is_the_softmax_weighted_mixture_of_operators(xy):
    net = RelaxedFusionNetwork(n_inputs=2, cells=1, nodes=1, C=C, L=L).eval()
    with torch.no_grad():
        net.alpha[0].copy_(torch.tensor([[30.0, 0.0], [0.0, 30.0]]))  # cell reads (x, y)
        net.beta[0].copy_(torch.tensor([[30.0, 0.0], [0.0, 30.0]]))  # node reads (X, Y)
    x, y = xy
    weights = torch.softmax(net.gamma[0][0], dim=0)
    expected = sum(w * op(x, y) for w, op in zip(weights, net.mixed[0].ops, strict=True))
    assert torch.allclose(net([x, y]), expected, atol=1e-4)


def test_derive_takes_the_argmax_of_every_choice():
    net = dominated_network(FUSION_OPS.index("ConcatFC"))
    with torch.no_grad():
        net.alpha[0].copy_(torch.tensor([[0.0, 0.0, 5.0], [0.0, 4.0, 0.0]]))
    genotype = net.derive()
    assert genotype.cells[0].inputs == (2, 1)
    assert genotype.cells[0].nodes[0].op == "ConcatFC"


def test_a_derived_genotype_builds_a_discrete_network_that_runs():
    net = RelaxedFusionNetwork(n_inputs=4, cells=2, nodes=3, C=C, L=L)
    genotype = net.derive()
    discrete = FusionNetwork(genotype, C, L).eval()
    out = discrete([torch.randn(2, C, L) for _ in range(4)])
    assert out.shape == (2, C, L)
    assert all(isinstance(spec, FusionOpSpec) for _, spec in discrete.parts())


def test_dead_nodes_and_cells_are_not_run_nor_counted():
    genotype = Genotype(
        n_inputs=3,
        cells=(
            CellGene((0, 1), (NodeGene((0, 1), "ConcatFC"),)),  # nobody reads cell 1
            CellGene((1, 2), (NodeGene((0, 1), "Sum"), NodeGene((0, 1), "SE1"))),  # node 1 dead
        ),
    )
    network = FusionNetwork(genotype, C, L)
    assert [name for name, _ in network.parts()] == ["fusion.cell2.node2"]
    assert len(network.parts(live_only=False)) == 3
    assert genotype.used_inputs() == [1, 2]


def test_genotype_round_trips_through_json_and_refuses_bad_indices():
    genotype = random_genotype(5, cells=3, nodes=2, rng=random.Random(1))
    assert Genotype.from_dict(genotype.to_dict()) == genotype
    bad = genotype.to_dict()
    bad["cells"][0]["inputs"] = [0, 9]
    with pytest.raises(ConfigError, match=r"cells\[0\].inputs = \[0, 9\]"):
        Genotype.from_dict(bad)
    with pytest.raises(ConfigError, match="bad fusion genotype"):
        Genotype.from_dict({"cells": "x"})


def test_expected_cost_is_the_gamma_weighted_sum_and_has_a_gradient():
    net = RelaxedFusionNetwork(n_inputs=2, cells=2, nodes=2, C=C, L=L)
    costs = {op: float(i + 1) for i, op in enumerate(FUSION_OPS)}
    cost = expected_cost(net, costs)
    searched = torch.tensor([costs[op] for op in net.operators])  # SE2 priced, not searched
    by_hand = sum(
        float(torch.softmax(net.gamma[p][d].detach(), 0) @ searched)
        for p in range(2)
        for d in range(2)
    )
    assert cost.item() == pytest.approx(by_hand, rel=1e-6)
    cost.backward()
    assert net.gamma[0].grad is not None and net.gamma[0].grad.abs().sum() > 0
    assert net.alpha[0].grad is None


def leaning_to(pair: tuple[int, int], n_inputs: int, cells: int = 1) -> RelaxedFusionNetwork:
    """A relaxed network whose output cell's most probable inputs are ``pair``."""
    net = RelaxedFusionNetwork(n_inputs=n_inputs, cells=cells, nodes=2, C=C, L=L)
    with torch.no_grad():
        alpha = net.alpha[-1]
        alpha.zero_()
        alpha[0, pair[0]], alpha[1, pair[1]] = 5.0, 5.0
        alpha[1, n_inputs - 1] = 4.0  # the runner-up of the second slot: the other modality
    return net


def test_a_derived_network_reads_every_modality_when_told_which_input_is_which():
    sources = ["image", "image", "image", "audio"]
    net = leaning_to((0, 1), n_inputs=4)
    assert net.derive().used_inputs() == [0, 1]  # the plain argmax: image alone
    covering = net.derive(sources)
    assert {sources[i] for i in covering.used_inputs()} == {"image", "audio"}
    assert covering.cells[-1].inputs == (0, 3)  # the most probable pair that reads both
    assert covering.cells[-1].nodes == net.derive().cells[-1].nodes  # nothing else changes


def test_a_derived_network_that_reads_every_modality_is_the_plain_argmax():
    sources = ["image", "audio", "audio"]
    net = leaning_to((0, 1), n_inputs=3, cells=2)
    assert net.derive(sources) == net.derive()
