"""Loaders for the paper's datasets, each on a tiny fixture written here in its on-disk format."""

import json
import sys
import wave

import numpy as np
import pytest
import torch
from conftest import write_avmnist_npy
from PIL import Image

from hnas_edge.data import load_dataset
from hnas_edge.errors import HnasError, MissingLibraryError


def write_wav(path, seconds, seed):
    rng = np.random.default_rng(seed)
    pcm = (rng.uniform(-0.3, 0.3, int(8000 * seconds)) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(pcm.tobytes())


def write_png(path, shape, seed, mode="L"):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


# AV-MNIST, MultiBench npy layout ------------------------------------------------------------


@pytest.fixture
def avmnist_npy(tmp_path):
    return write_avmnist_npy(tmp_path, audio_size=16)


def test_avmnist_npy_splits_train_into_train_and_a_last_twelfth_val(avmnist_npy):
    sizes = {s: len(load_dataset("avmnist", avmnist_npy, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 22, "val": 2, "test": 6}
    ds = load_dataset("avmnist", avmnist_npy, "val")
    inputs, label = ds[1]
    assert inputs["image"].shape == (1, 28, 28) and inputs["audio"].shape == (1, 16, 16)
    assert int(label) == 23 % 10 and ds.task == "multiclass" and ds.n_classes == 10
    raw = np.load(avmnist_npy / "image" / "train_data.npy")[23].reshape(1, 28, 28) / 255
    assert torch.allclose(
        ds.stats["image"].apply(torch.tensor(raw, dtype=torch.float32)), inputs["image"], atol=1e-5
    )


def test_avmnist_npy_with_a_missing_file_names_it(avmnist_npy):
    (avmnist_npy / "audio" / "test_data.npy").unlink()
    with pytest.raises(HnasError, match="incomplete: missing audio/test_data.npy"):
        load_dataset("avmnist", avmnist_npy, "train")


# AV-MNIST, image folder + wav layout --------------------------------------------------------


@pytest.fixture
def avmnist_folders(tmp_path):
    for split, n_images, n_wavs in (("train", 3, 2), ("test", 2, 1)):
        for digit in (0, 1):
            for k in range(n_images):
                write_png(tmp_path / "mnist" / split / str(digit) / f"{k}.png", (28, 28), k)
            for k in range(n_wavs):
                wav = tmp_path / "sound_450" / split / str(digit) / f"{digit}_theo_{k}.wav"
                write_wav(wav, 0.3 + 0.1 * k, seed=digit * 10 + k)
    return tmp_path


def test_avmnist_folders_pair_images_with_mfcc_of_recordings(avmnist_folders):
    train = load_dataset("avmnist", avmnist_folders, "train")
    val = load_dataset("avmnist", avmnist_folders, "val")
    test = load_dataset("avmnist", avmnist_folders, "test")
    assert (len(train), len(val), len(test)) == (4, 2, 4)  # last twelfth (>= 1) of train is val
    inputs, label = test[0]
    assert inputs["image"].shape == (1, 28, 28) and inputs["audio"].shape == (1, 20, 20)
    assert sorted(test.targets.tolist()) == [0, 0, 1, 1]
    # val takes its own recording per digit: the audio of val and train never coincide
    for v in val.inputs["audio"]:
        assert not any(torch.equal(v, t) for t in train.inputs["audio"])


def test_avmnist_folders_with_images_but_no_recordings_say_where_to_put_them(avmnist_folders):
    for wav in (avmnist_folders / "sound_450" / "test" / "1").iterdir():
        wav.unlink()
    with pytest.raises(HnasError, match=r"no recordings: add \.wav files under .*test/1"):
        load_dataset("avmnist", avmnist_folders, "test")


def test_a_folder_in_neither_avmnist_layout_lists_both(tmp_path):
    with pytest.raises(HnasError, match="train_data.npy.*sound_450"):
        load_dataset("avmnist", tmp_path, "train")


# MM-IMDB ------------------------------------------------------------------------------------


def mmimdb_sample(rng):
    image = rng.integers(0, 256, (3, 40, 30), dtype=np.uint8)
    label = (rng.uniform(size=23) < 0.2).astype(np.int64)
    return image, rng.normal(size=300).astype(np.float32), label


@pytest.fixture
def mmimdb_npy(tmp_path):
    rng = np.random.default_rng(1)
    for folder, n in (("train", 3), ("dev", 2), ("test", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            for kind, array in zip(("image", "text", "label"), mmimdb_sample(rng), strict=True):
                np.save(tmp_path / folder / f"{kind}_{i:06d}.npy", array)
    return tmp_path


def test_mmimdb_per_sample_npy_is_multilabel_with_224_posters(mmimdb_npy):
    ds = load_dataset("mmimdb", mmimdb_npy, "val")
    assert len(ds) == 2 and ds.task == "multilabel" and ds.n_classes == 23
    inputs, label = ds[1]
    assert inputs["image"].shape == (3, 224, 224) and inputs["text"].shape == (300,)
    expected = np.load(mmimdb_npy / "dev" / "label_000001.npy")
    assert label.dtype == torch.float32 and torch.equal(label, torch.tensor(expected).float())


def test_mmimdb_npy_missing_one_file_names_it(mmimdb_npy):
    (mmimdb_npy / "test" / "text_000001.npy").unlink()
    with pytest.raises(HnasError, match="missing text_000001.npy"):
        load_dataset("mmimdb", mmimdb_npy, "test")


def write_mmimdb_hdf5(root, ids):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(2)
    samples = [mmimdb_sample(rng) for _ in ids]
    with h5py.File(root / "multimodal_imdb.hdf5", "w") as handle:
        handle["images"] = np.stack([s[0] for s in samples])
        handle["features"] = np.stack([s[1] for s in samples])
        handle["genres"] = np.stack([s[2] for s in samples])
        handle["imdb_ids"] = np.array([i.encode() for i in ids])
    return samples


def test_mmimdb_hdf5_follows_the_split_json_ids(tmp_path):
    samples = write_mmimdb_hdf5(tmp_path, ["a", "b", "c", "d", "e"])
    split = {"train": ["c", "a"], "dev": ["e"], "test": ["b", "d"]}
    (tmp_path / "mmimdb_split.json").write_text(json.dumps(split))
    test = load_dataset("mmimdb", tmp_path, "test")
    assert len(test) == 2
    _, label = test[1]  # "d" is row 3 of the file
    assert torch.equal(label, torch.tensor(samples[3][2]).float())


def test_mmimdb_hdf5_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    (tmp_path / "multimodal_imdb.hdf5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingLibraryError, match=r"h5py is not available.*pip install h5py"):
        load_dataset("mmimdb", tmp_path, "train")


# Harm-P memes -------------------------------------------------------------------------------

LABELS = [["not harmful"], ["somewhat harmful", "individual"], ["very harmful", "society"]]


@pytest.fixture
def memes(tmp_path):
    rng = np.random.default_rng(3)
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        lines = []
        for i in range(n):
            name = f"{split}_{i}.png"
            write_png(tmp_path / "images" / name, (60, 90, 3), i, "RGB")
            lines.append(
                json.dumps(
                    {"id": name, "image": name, "labels": LABELS[i % 3], "text": "some meme text"}
                )
            )
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        (tmp_path / "text_features").mkdir(exist_ok=True)
        np.save(tmp_path / "text_features" / f"{split}.npy", rng.integers(0, 49408, (n, 77)))
    return tmp_path


def test_memes_give_a_112_image_the_text_features_and_three_classes(memes):
    ds = load_dataset("memes", memes, "train")
    assert len(ds) == 3 and ds.n_classes == 3 and ds.modalities == ("image", "text")
    inputs, label = ds[2]
    assert inputs["image"].shape == (3, 112, 112) and inputs["text"].shape == (77,)
    assert [int(ds[i][1]) for i in range(3)] == [0, 1, 2]
    assert ds.input_shapes == {"image": (3, 112, 112), "text": (77,)}


def test_memes_with_an_unknown_label_point_at_the_line(memes):
    path = memes / "annotations" / "val.jsonl"
    path.write_text(json.dumps({"image": "val_0.png", "labels": ["mildly harmful"]}) + "\n")
    with pytest.raises(HnasError, match=r"val.jsonl:1 has label 'mildly harmful'"):
        load_dataset("memes", memes, "val")


def test_memes_without_text_features_name_the_expected_file(memes):
    (memes / "text_features" / "test.npy").unlink()
    with pytest.raises(HnasError, match="missing text_features/test.npy"):
        load_dataset("memes", memes, "test")


def test_memes_features_must_have_one_row_per_annotation(memes):
    np.save(memes / "text_features" / "test.npy", np.zeros((5, 77)))
    with pytest.raises(HnasError, match="one row per line of annotations/test.jsonl"):
        load_dataset("memes", memes, "test")


def test_on_disk_datasets_need_a_data_dir():
    with pytest.raises(HnasError, match="pass its folder with --data-dir"):
        load_dataset("mmimdb")
    with pytest.raises(HnasError, match="AV-MNIST folder not found"):
        load_dataset("avmnist", "/nonexistent/avmnist")
