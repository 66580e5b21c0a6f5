"""Export to ONNX, checked against torch with onnxruntime."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from hnas_edge.backend.onnx import OPSET, export_onnx, onnx_parity
from hnas_edge.space.ofa import OFASupernet
from hnas_edge.space.presets import PRESETS, get_preset
from hnas_edge.space.specs import ConvSpec, MBConvSpec

BACKBONES = [(p, m) for p in PRESETS for m, _ in get_preset(p).backbones]
ADAPTERS_AND_OPERATORS = list(
    dict.fromkeys(
        spec
        for p in PRESETS
        for spec in get_preset(p).all_specs()
        if spec.kind in ("adapter", "fusion")
    )
)


def randomise_norms(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


@pytest.mark.parametrize(
    "spec",
    [
        ConvSpec((3, 16, 16), 8, 3, 2, True, "h_swish"),
        ConvSpec((24, 7, 7), 40, 1, 1, True, "h_swish", pool=True),
        MBConvSpec((16, 14, 14), 24, 6, 7, 2, True, "relu"),
        MBConvSpec((24, 7, 7), 24, 3, 5, 1, False, "h_swish"),
    ],
    ids=lambda s: s.key,
)
def test_a_single_block_exports_at_the_fixed_opset(tmp_path, spec):
    module = randomise_norms(spec.build())
    inputs = {"input0": torch.randn(*spec.input_shapes()[0])}
    path = export_onnx(module, inputs, tmp_path / "block.onnx")
    model = onnx.load(path)
    assert model.opset_import[0].version == OPSET
    assert [i.name for i in model.graph.input] == ["input0"]
    assert onnx_parity(module, inputs, path).max_abs_diff <= 1e-4


@pytest.mark.parametrize(("preset", "modality"), BACKBONES)
def test_a_random_extracted_backbone_of_each_preset_matches_torch(tmp_path, preset, modality):
    space = get_preset(preset).backbone(modality)
    torch.manual_seed(0)
    if hasattr(space, "stages"):
        subnet = OFASupernet(space).extract(space.sample_config(11))
        shape = space.in_shape
    else:
        from hnas_edge.space.maxout import MaxoutBackbone

        subnet, shape = MaxoutBackbone(space), (space.in_features,)
    subnet = randomise_norms(subnet)
    inputs = {"input": torch.randn(1, *shape)}
    parity = onnx_parity(subnet, inputs, export_onnx(subnet, inputs, tmp_path / "net.onnx"))
    assert parity.max_abs_diff <= 1e-4


def test_several_outputs_get_numbered_names(tmp_path):
    space = get_preset("avmnist").backbone("audio")
    subnet = randomise_norms(OFASupernet(space).extract(space.min_config()))

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.subnet = subnet

        def forward(self, x):
            return tuple(self.subnet.forward_features(x))

    inputs = {"audio": torch.randn(1, 1, 20, 20)}
    path = export_onnx(Features(), inputs, tmp_path / "features.onnx")
    assert [o.name for o in onnx.load(path).graph.output] == ["output0", "output1", "output2"]
    parity = onnx_parity(Features(), inputs, path)
    assert parity.n_outputs == 3 and parity.max_abs_diff <= 1e-4


@pytest.mark.parametrize("spec", ADAPTERS_AND_OPERATORS, ids=lambda s: s.key)
def test_every_adapter_and_fusion_operator_of_the_presets_matches_torch(tmp_path, spec):
    torch.manual_seed(0)
    module = randomise_norms(spec.build())
    inputs = {f"input{i}": torch.randn(*shape) for i, shape in enumerate(spec.input_shapes())}
    parity = onnx_parity(module, inputs, export_onnx(module, inputs, tmp_path / "part.onnx"))
    assert parity.max_abs_diff <= 1e-4
