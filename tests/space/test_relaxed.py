"""The relaxed network computes on tokens (B, L, C) what the discrete operators compute on
(B, C, L), with the same parameters: outputs, gradients and batch-norm statistics agree."""

from __future__ import annotations

import copy

import pytest
import torch

from hnas_edge.search.darts import FusionSupernet
from hnas_edge.space.fusion import FeatureAdapter
from hnas_edge.space.relaxed import MixedNode, adapt_tokens, adapter_input
from hnas_edge.space.specs import FUSION_OPS

C, L = 6, 4


def tokens(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2)


@pytest.fixture
def xy():
    torch.manual_seed(0)
    return torch.randn(3, C, L), torch.randn(3, C, L)


@pytest.mark.parametrize("name", FUSION_OPS)
def test_every_operator_on_tokens_is_the_discrete_operator_with_the_same_gradients(name, xy):
    torch.manual_seed(1)
    node = MixedNode(C, L, (name,))
    op = node.ops[0]

    def run(forward):
        x, y = (t.clone().requires_grad_() for t in xy)
        out = forward(x, y)
        out.square().sum().backward()
        grads = {n: p.grad.clone() for n, p in op.named_parameters()}
        op.zero_grad()
        return out, {"x": x.grad, "y": y.grad, **grads}

    discrete, expected = run(op)
    on_tokens, got = run(lambda x, y: tokens(node.outputs(tokens(x), tokens(y))[0]))
    assert torch.allclose(on_tokens, discrete, atol=1e-5)
    assert got.keys() == expected.keys()
    for n, grad in expected.items():
        assert torch.allclose(got[n], grad, atol=1e-4), n


def test_a_node_mixes_its_operators_by_their_weights(xy):
    node = MixedNode(C, L, FUSION_OPS)
    x, y = xy
    weights = torch.softmax(torch.randn(len(FUSION_OPS)), dim=0)
    expected = sum(w * op(x, y) for w, op in zip(weights, node.ops, strict=True))
    assert torch.allclose(tokens(node(tokens(x), tokens(y), weights)), expected, atol=1e-5)


@pytest.mark.parametrize("operators", [("Sum", "SE1"), ("CatConvMish",), ("ConcatFC", "Sum")])
def test_any_subset_of_operators_runs_in_its_own_order(operators, xy):
    node = MixedNode(C, L, operators)
    x, y = xy
    outs = node.outputs(tokens(x), tokens(y))
    for op, out in zip(node.ops, outs, strict=True):
        assert torch.allclose(tokens(out), op(x, y), atol=1e-5)


@pytest.mark.parametrize("in_shape", [(5, 7, 7), (5, 4, 4), (9,)])
def test_an_adapter_on_tokens_is_the_discrete_adapter_running_statistics_included(in_shape):
    torch.manual_seed(2)
    adapter = FeatureAdapter(in_shape, C, L).train()
    twin = copy.deepcopy(adapter)
    feature = torch.randn(8, *in_shape)
    expected = adapter(feature)
    got = adapt_tokens(twin, adapter_input(twin, feature))
    assert torch.allclose(tokens(got), expected, atol=1e-5)
    assert torch.allclose(twin.bn.running_mean, adapter.bn.running_mean, atol=1e-6)
    assert torch.allclose(twin.bn.running_var, adapter.bn.running_var, atol=1e-6)


def test_the_supernet_on_tokens_reads_its_head_in_the_discrete_order():
    torch.manual_seed(3)
    net = FusionSupernet([(5, 4, 4), (9,)], n_classes=3, C=C, L=L, cells=2, nodes=2).eval()
    features = [torch.randn(4, 5, 4, 4), torch.randn(4, 9)]
    adapted = [adapter(x) for adapter, x in zip(net.adapters, features, strict=True)]
    expected = net.head(torch.flatten(net.relaxed(adapted), 1))
    assert torch.allclose(net(features), expected, atol=1e-5)
