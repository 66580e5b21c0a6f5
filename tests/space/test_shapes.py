"""Samples are held to the input shapes of the preset (or the artifact) they are fed to."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hnas_edge.errors import ConfigError
from hnas_edge.space.presets import PRESETS, get_preset
from hnas_edge.space.shapes import check_dataset_shapes, check_input_shapes, presets_taking


def dataset(**shapes):
    """What the check reads of a dataset: its name and one sample's shape per modality."""
    return SimpleNamespace(name="mine", input_shapes=shapes)


def test_multibench_avmnist_audio_is_refused_naming_the_modality_both_shapes_and_the_fix():
    multibench = dataset(image=(1, 28, 28), audio=(1, 112, 112))
    with pytest.raises(ConfigError) as refused:
        check_dataset_shapes(get_preset("avmnist"), multibench)
    assert str(refused.value) == (
        "audio samples of dataset mine are 1×112×112 but preset avmnist expects 1×20×20: "
        "resample the spectrograms to 20×20; see docs/datasets.md"
    )


def test_shapes_another_preset_takes_are_pointed_at():
    posters = dataset(image=(3, 224, 224), text=(300,))
    with pytest.raises(ConfigError, match=r"resize the images to 112×112 \(or use preset mmimdb"):
        check_dataset_shapes(get_preset("memes"), posters)


def test_text_features_of_another_width_are_refused():
    clip_embeddings = dataset(image=(3, 112, 112), text=(512,))
    with pytest.raises(ConfigError, match="text samples of dataset mine are 512 but preset memes "
                       "expects 77: make the text features vectors of 77 values"):  # fmt: skip
        check_dataset_shapes(get_preset("memes"), clip_embeddings)


def test_a_modality_the_preset_needs_but_the_data_lacks_is_named():
    with pytest.raises(ConfigError, match="dataset mine has no text samples; preset memes expects "
                       "image 3×112×112, text 77"):  # fmt: skip
        check_dataset_shapes(get_preset("memes"), dataset(image=(3, 112, 112)))


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_takes_its_own_shapes_and_only_it(name):
    preset = get_preset(name)
    check_dataset_shapes(preset, dataset(**preset.input_shapes()))
    assert presets_taking(preset.input_shapes()) == [name]


def test_modalities_nobody_reads_are_not_checked():
    expected = {"audio": (1, 20, 20)}
    check_input_shapes({"audio": (1, 20, 20), "extra": (5,)}, expected, "the model", "x.npz")
