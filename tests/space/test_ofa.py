"""The elastic supernet: configs, weight sharing, extraction of static subnets."""

from __future__ import annotations

import re

import pytest
import torch

from hnas_edge.errors import ConfigError
from hnas_edge.space.dynamic import DynamicMBConv
from hnas_edge.space.ofa import OFASupernet, StaticBackbone
from hnas_edge.space.presets import PRESETS, get_preset

ELASTIC_BACKBONES = [
    (preset, modality)
    for preset in PRESETS
    for modality, space in get_preset(preset).backbones
    if hasattr(space, "stages")
]
#: Small inputs keep the large spaces fast; shapes follow the preset exactly otherwise.
BATCH = 2


def perturbed_supernet(space, seed: int = 0) -> OFASupernet:
    """A supernet whose batch-norm statistics and kernel transforms are not the identity, so that
    a wrong slice or a skipped transform shows up as a difference."""
    torch.manual_seed(seed)
    net = OFASupernet(space)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
            if isinstance(module, DynamicMBConv):
                for matrix in module.kernel_transforms.values():
                    matrix.add_(0.05 * torch.randn_like(matrix))
    return net.eval()


@pytest.mark.parametrize(("preset", "modality"), ELASTIC_BACKBONES)
def test_extracted_subnet_computes_what_the_supernet_computes(preset, modality):
    space = get_preset(preset).backbone(modality)
    net = perturbed_supernet(space)
    x = torch.randn(BATCH, *space.in_shape)
    n_configs = 50
    worst, outputs = 0.0, set()
    with torch.no_grad():
        for seed in range(n_configs):
            config = space.sample_config(seed)
            net.set_active(config)
            expected = net(x)
            subnet = net.extract(config).eval()
            worst = max(worst, (subnet(x) - expected).abs().max().item())
            outputs.add(round(expected.sum().item(), 4))
    assert worst <= 1e-5
    assert len(outputs) > n_configs // 2, "different subnets should compute different functions"


def test_extracted_subnet_owns_its_weights():
    space = get_preset("avmnist").backbone("image")
    net = perturbed_supernet(space)
    config = space.max_config()
    subnet = net.extract(config).eval()
    x = torch.randn(1, *space.in_shape)
    before = subnet(x)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert torch.equal(subnet(x), before)


def test_extracting_a_subnet_leaves_the_global_random_stream_where_it_was():
    """Callers seed their own work (a stage-2 candidate); whether a backbone had to be extracted
    first must not change what they draw."""
    space = get_preset("avmnist").backbone("image")
    net = OFASupernet(space)
    torch.manual_seed(0)
    net.extract(space.max_config())
    after_extracting = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after_extracting)


def test_kernel_transform_changes_small_kernels_only():
    block = DynamicMBConv(16, 16, 1, False, "relu", (3, 5, 7), (3, 4, 6))
    full = block.depthwise_filter(7, 48).clone()
    plain_centre = full[..., 2:5, 2:5].clone()
    with torch.no_grad():
        block.kernel_transforms["5to3"].mul_(2.0)
    assert torch.equal(block.depthwise_filter(7, 48), full)
    assert torch.allclose(block.depthwise_filter(3, 48), 2.0 * plain_centre)


def test_expand_ratio_slices_the_shared_weights():
    block = DynamicMBConv(24, 24, 1, True, "relu", (3, 5, 7), (3, 4, 6))
    small = block.export((24, 7, 7), kernel=7, expand=3)
    assert small.spec.mid_ch == 72
    assert torch.equal(small.expand.conv.weight, block.expand.conv.weight[:72])
    assert small.se.reduce.weight.shape[:2] == (24, 72)


def test_configs_are_sampled_reproducibly_and_within_the_choices():
    space = get_preset("memes").backbone("image")
    assert space.sample_config(7) == space.sample_config(7)
    assert space.sample_config(7) != space.sample_config(8)
    config = space.sample_config(3)
    assert len(config["ks"]) == len(config["e"]) == 12 and len(config["d"]) == 3
    assert space.validate_config(config) == config


def test_min_and_max_configs_bound_the_cost():
    space = get_preset("avmnist").backbone("audio")
    macs = {
        name: sum(spec.macs() for _, spec in space.parts(config))
        for name, config in (("min", space.min_config()), ("max", space.max_config()))
    }
    random_macs = sum(spec.macs() for _, spec in space.parts(space.sample_config(0)))
    assert macs["min"] < random_macs < macs["max"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ks": [4, 3, 3, 3]}, "ks[0] = 4; allowed values: 3, 5, 7"),
        ({"d": [5]}, "d[0] = 5; allowed values: 2, 3, 4"),
        ({"e": [3, 3, 3]}, "'e' must be a list of 4 values"),
        ({"depth": [2]}, "unknown config field(s) ['depth']"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field_and_allowed_values(change, message):
    space = get_preset("avmnist").backbone("image")
    config = {**space.max_config(), **change}
    with pytest.raises(ConfigError, match=re.escape(message)):
        space.validate_config(config)


def test_unknown_preset_is_refused_with_the_known_names():
    with pytest.raises(ConfigError, match="unknown space 'cifar'; use one of avmnist, memes"):
        get_preset("cifar")


def test_fusion_candidates_keep_their_shapes_across_configs():
    space = get_preset("avmnist").backbone("image")
    net = OFASupernet(space).eval()
    x = torch.randn(1, *space.in_shape)
    for config in (space.min_config(), space.max_config()):
        net.set_active(config)
        shapes = [tuple(f.shape[1:]) for f in net.forward_features(x)]
        assert shapes == space.feature_shapes() == [(16, 14, 14), (24, 7, 7), (80,)]


def test_a_fresh_static_subnet_has_the_parts_of_its_config():
    space = get_preset("avmnist").backbone("image")
    config = {"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}
    subnet = StaticBackbone.fresh(space, config)
    names = [name for name, _ in subnet.parts()]
    assert names == [
        "stem", "first", "stage1.block1", "stage1.block2",
        "final_expand", "feature_mix", "classifier",
    ]  # fmt: skip
    assert subnet.eval()(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_elastic_batch_norm_updates_its_statistics_like_nn_batchnorm():
    """With momentum None (batch-norm recalibration) the sliced statistics are a cumulative
    average of the batches seen, exactly as nn.BatchNorm2d keeps them."""
    block = DynamicMBConv(16, 16, 1, False, "relu", (3, 5, 7), (3, 4, 6)).train()
    block.set_active(7, 3)
    reference = torch.nn.BatchNorm2d(48, momentum=None).train()
    block.expand.bn.reset_running_stats()
    block.expand.bn.momentum = None
    for _ in range(3):
        x = torch.randn(8, 16, 5, 5) * 2 + 1
        block(x)
        reference(torch.nn.functional.conv2d(x, block.expand.conv.weight[:48]))
    assert torch.allclose(block.expand.bn.running_mean[:48], reference.running_mean, atol=1e-5)
    assert torch.allclose(block.expand.bn.running_var[:48], reference.running_var, atol=1e-4)
    assert torch.equal(block.expand.bn.running_mean[48:], torch.zeros(48))  # unused channels
