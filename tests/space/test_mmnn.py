"""The multimodal network: its architecture dict, its parts, and that it runs and exports."""

from __future__ import annotations

import json
import re

import pytest
import torch

from hnas_edge.backend.onnx import export_onnx, onnx_parity
from hnas_edge.errors import ConfigError
from hnas_edge.space.fusion import CellGene, Genotype, NodeGene
from hnas_edge.space.mmnn import MultimodalArch, arch_parts, build_fresh, random_arch
from hnas_edge.space.presets import PRESETS, get_preset


@pytest.mark.parametrize("preset", PRESETS)
def test_the_architecture_dict_round_trips_through_json(preset):
    arch = random_arch(get_preset(preset), rng=5)
    assert MultimodalArch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(preset="cifar"), "unknown space 'cifar'"),
        (lambda d: d["backbones"].pop("audio"), "exactly ['image', 'audio']"),
        (lambda d: d["backbones"]["image"].update(d=[5]), "d[0] = 5; allowed values: 2, 3, 4"),
        (lambda d: d["fusion"].update(cells=9), "fusion cells = 9; allowed values: [1, 2, 3, 4]"),
        (lambda d: d["fusion"].update(nodes=1 + d["fusion"]["nodes"] % 4), "fusion genotype has"),
    ],
)
def test_a_bad_architecture_is_refused_in_one_line(change, message):
    data = random_arch(get_preset("avmnist"), rng=0).to_dict()
    change(data)
    with pytest.raises(ConfigError, match=re.escape(message)):
        MultimodalArch.from_dict(data)


def genotype_reading(*inputs: int) -> Genotype:
    """One cell, one ConcatFC node over the two given candidate features of avmnist (6 of them:
    image first/stage/embedding, then audio first/stage/embedding)."""
    return Genotype(6, (CellGene(tuple(inputs), (NodeGene((0, 1), "ConcatFC"),)),))


def test_parts_follow_what_the_network_reads():
    preset = get_preset("avmnist")
    configs = {m: preset.backbone(m).max_config() for m in preset.modalities}
    early = MultimodalArch("avmnist", configs, 1, 1, genotype_reading(0, 3))  # both first blocks
    names = [name for name, _ in arch_parts(preset, early)]
    assert names == [
        "image.stem", "image.first", "audio.stem", "audio.first",
        "adapter.image0", "adapter.audio0", "fusion.cell1.node1", "head",
    ]  # fmt: skip
    late = MultimodalArch("avmnist", configs, 1, 1, genotype_reading(2, 5))  # both embeddings
    late_names = [name for name, _ in arch_parts(preset, late)]
    assert "image.feature_mix" in late_names and "image.classifier" not in late_names


def test_the_paper_accounting_counts_whole_backbones_and_fusion_nodes_only():
    preset = get_preset("avmnist")
    configs = {m: preset.backbone(m).min_config() for m in preset.modalities}
    arch = MultimodalArch("avmnist", configs, 1, 1, genotype_reading(0, 3))
    names = [name for name, _ in arch_parts(preset, arch, accounting="paper")]
    assert "image.classifier" in names and "audio.classifier" in names
    assert not any(n.startswith(("adapter", "head")) for n in names)
    assert names[-1] == "fusion.cell1.node1"


@pytest.mark.parametrize("preset", PRESETS)
def test_a_random_whole_network_runs_and_matches_onnxruntime(tmp_path, preset):
    torch.manual_seed(0)
    space = get_preset(preset)
    net = build_fresh(space, random_arch(space, rng=2)).eval()
    inputs = net.example_inputs()
    assert net(*inputs.values()).shape == (1, space.n_classes)
    parity = onnx_parity(net, inputs, export_onnx(net, inputs, tmp_path / "mmnn.onnx"))
    assert parity.max_abs_diff <= 1e-4
