"""The Maxout text backbone (Table 9)."""

from __future__ import annotations

import pytest
import torch

from hnas_edge.errors import ConfigError
from hnas_edge.space.maxout import MaxoutBackbone, MaxoutSpace, MaxoutUnit


def test_a_maxout_unit_keeps_the_largest_of_each_group():
    unit = MaxoutUnit(2, 2, pool=3)
    with torch.no_grad():
        unit.linear.weight.copy_(torch.tensor([[1.0, 0], [2, 0], [3, 0], [0, 1], [0, -1], [0, 0]]))
        unit.linear.bias.zero_()
    out = unit(torch.tensor([[1.0, 2.0], [-1.0, -2.0]]))
    assert out.tolist() == [[3.0, 2.0], [-1.0, 2.0]]


def test_widths_grow_by_the_factor_and_the_spec_counts_them():
    space = MaxoutSpace(in_features=300, n_classes=23)
    assert space.feature_shapes() == [(128,), (256,)]
    assert space.spec.output_shape() == (256,)
    assert space.spec.macs() == (300 * 128 + 128 * 256) * 4
    net = MaxoutBackbone(space).eval()
    x = torch.randn(5, 300)
    assert [tuple(f.shape) for f in net.forward_features(x)] == [(5, 128), (5, 256)]
    assert net(x).shape == (5, 23)


def test_the_text_backbone_has_one_config_only():
    space = MaxoutSpace(in_features=77, n_classes=3)
    assert space.num_configs() == 1 and space.sample_config(3) == {}
    with pytest.raises(ConfigError, match="not searched"):
        space.validate_config({"ks": [3]})
