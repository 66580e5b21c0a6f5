"""The bundled AV-digits dataset: offline, disjoint and stable splits, documented provenance."""

import numpy as np
import pytest
import torch

from hnas_edge.data import DATASET_NAMES, SPLITS, load_dataset
from hnas_edge.data.avdigits import DATA_FILE, avdigits_metadata, load_avdigits
from hnas_edge.errors import HnasError

COUNTS = {"train": 3500, "val": 500, "test": 1000}


@pytest.fixture(scope="module")
def splits():
    return {s: load_avdigits(s) for s in SPLITS}


def fsdd_index(stem: str) -> int:
    return int(stem.split("_")[2])


def test_the_data_file_ships_inside_the_package_and_is_small():
    assert DATA_FILE.is_file()
    assert DATA_FILE.stat().st_size < 5_000_000


def test_each_split_has_paired_image_and_audio_of_fixed_shapes(splits):
    for split, ds in splits.items():
        assert len(ds) == COUNTS[split]
        assert ds.modalities == ("image", "audio")
        assert ds.n_classes == 10 and ds.task == "multiclass"
        assert ds.input_shapes == {"image": (1, 28, 28), "audio": (1, 20, 20)}
        inputs, label = ds[0]
        assert inputs["image"].shape == (1, 28, 28) and inputs["image"].dtype == torch.float32
        assert inputs["audio"].shape == (1, 20, 20) and inputs["audio"].dtype == torch.float32
        assert label.dtype == torch.int64 and 0 <= int(label) < 10
        assert sorted(torch.bincount(ds.targets).tolist()) == [COUNTS[split] // 10] * 10


def test_every_pair_joins_an_image_and_a_recording_of_the_same_digit(splits):
    for ds in splits.values():
        digits = np.array([int(ds.recording_names[r].split("_")[0]) for r in ds.recording])
        assert np.array_equal(digits, ds.targets.numpy())


def test_no_recording_and_no_image_is_in_two_splits(splits):
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not set(splits[a].recording.tolist()) & set(splits[b].recording.tolist())
        assert not set(splits[a].mnist_row.tolist()) & set(splits[b].mnist_row.tolist())


def test_fsdd_test_recordings_are_exactly_the_test_split(splits):
    names = splits["test"].recording_names
    assert {fsdd_index(names[r]) for r in splits["test"].recording} <= set(range(5))
    assert len(set(splits["test"].recording.tolist())) == 300  # all of FSDD's 300 test takes
    for split in ("train", "val"):
        assert min(fsdd_index(names[r]) for r in splits[split].recording) >= 5


def test_two_loads_give_identical_data(splits):
    again = load_avdigits("val")
    for m in ("image", "audio"):
        assert torch.equal(again.inputs[m], splits["val"].inputs[m])
    assert torch.equal(again.targets, splits["val"].targets)


def test_inputs_are_normalised_with_train_statistics(splits):
    for m in ("image", "audio"):
        x = splits["train"].inputs[m]
        assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2
    raw = load_avdigits("train", normalize=False)
    assert raw.inputs["image"].min() >= 0.0 and raw.inputs["image"].max() <= 1.0
    stats = raw.stats["image"]
    assert torch.allclose(stats.apply(raw.inputs["image"]), splits["train"].inputs["image"])


def test_loading_all_splits(benchmark):
    """How long loading takes is measured (pytest-benchmark prints it), not asserted: these
    machines are shared and their speed drifts."""
    splits = benchmark(lambda: {split: load_avdigits(split) for split in SPLITS})
    assert {name: len(split.targets) for name, split in splits.items()} == COUNTS


def test_metadata_credits_the_sources_and_states_the_licence():
    meta = avdigits_metadata()
    assert "CC BY-SA 4.0" in meta["licence"]
    assert "Free Spoken Digit Dataset" in meta["sources"]["audio"]["name"]
    assert "MNIST" in meta["sources"]["image"]["name"]
    assert meta["build"]["counts"] == COUNTS
    assert 0.25 <= meta["build"]["pca_energy_kept"] < 0.35
    assert (DATA_FILE.parent / "LICENSE-avdigits.md").is_file()


def test_load_dataset_finds_the_bundled_set_without_a_data_dir():
    ds = load_dataset("avdigits", split="test")
    assert len(ds) == COUNTS["test"]


def test_unknown_names_and_splits_are_one_line_errors():
    with pytest.raises(HnasError, match="unknown dataset 'cifar'.*avdigits, avmnist"):
        load_dataset("cifar")
    with pytest.raises(HnasError, match="unknown split 'dev'; use one of train, val, test"):
        load_dataset("avdigits", split="dev")
    assert DATASET_NAMES == ("avdigits", "avmnist", "mmimdb", "memes")


def test_a_missing_data_file_names_the_rebuild_script(tmp_path):
    with pytest.raises(HnasError, match="not found.*build_avdigits.py"):
        load_avdigits("train", path=tmp_path / "avdigits.npz")
