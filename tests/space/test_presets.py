"""Presets mirror the paper's three search spaces, down to the keys of its published LUTs."""

from __future__ import annotations

import pytest

from hnas_edge.space.presets import get_preset, preset_for_dataset
from hnas_edge.space.specs import ConvSpec, LinearSpec, MBConvSpec


def backbone_specs(preset_name: str) -> set:
    preset = get_preset(preset_name)
    return {
        spec
        for _, space in preset.backbones
        if hasattr(space, "stages")
        for spec in space.all_specs()
    }


@pytest.mark.parametrize(
    ("preset", "keys"),
    [("avmnist", 44), ("memes", 59), ("mmimdb", 95)],
)
def test_image_and_audio_backbones_need_as_many_keys_as_the_published_tables_hold(preset, keys):
    assert len(backbone_specs(preset)) == keys


def test_avmnist_matches_the_paper_macro_architecture():
    image = get_preset("avmnist").backbone("image")
    parts = dict(image.parts({"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}))
    assert parts["stem"] == ConvSpec((1, 28, 28), 16, 3, 2, True, "h_swish")
    assert parts["first"] == MBConvSpec((16, 14, 14), 16, 1, 3, 1, False, "relu")
    assert parts["stage1.block1"] == MBConvSpec((16, 14, 14), 24, 3, 5, 2, False, "relu")
    assert parts["stage1.block2"] == MBConvSpec((24, 7, 7), 24, 6, 5, 1, False, "relu")
    assert parts["final_expand"] == ConvSpec((24, 7, 7), 40, 1, 1, True, "h_swish", pool=True)
    assert parts["feature_mix"] == ConvSpec((40, 1, 1), 80, 1, 1, False, "h_swish")
    assert parts["classifier"] == LinearSpec(80, 10)


def test_memes_has_three_stages_with_se_in_the_second_and_a_maxout_text_backbone():
    preset = get_preset("memes")
    image = preset.backbone("image")
    assert [(s.width, s.stride, s.use_se, s.act) for s in image.stages] == [
        (24, 2, False, "relu"),
        (40, 2, True, "relu"),
        (80, 2, False, "h_swish"),
    ]
    text = preset.backbone("text")
    assert (text.hidden, text.n_blocks, text.factor) == (128, 2, 2)


def test_mmimdb_is_the_five_stage_ofa_space_at_224():
    image = get_preset("mmimdb").backbone("image")
    assert image.in_shape == (3, 224, 224)
    assert [s.width for s in image.stages] == [32, 48, 96, 136, 192]
    assert get_preset("mmimdb").task == "multilabel"


def test_a_preset_lists_adapters_and_every_fusion_operator_once():
    preset = get_preset("avmnist")
    specs = preset.all_specs()
    assert len(specs) == len(set(specs))
    kinds = [spec.kind for spec in specs]
    assert kinds.count("fusion") == 7
    assert kinds.count("adapter") == 5  # 3 candidates per modality; both embeddings are (80,)


def test_the_bundled_dataset_is_searched_in_the_avmnist_space():
    assert preset_for_dataset("avdigits").name == "avmnist"
