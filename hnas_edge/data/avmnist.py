"""AV-MNIST from disk, in either of the two layouts its users have.

MultiBench ``.npy`` layout (val = the last twelfth of train, MultiBench's 55,000/5,000 split)::

    ROOT/image/train_data.npy  (N, 784) or (N, 28, 28), 0-255
    ROOT/image/test_data.npy
    ROOT/audio/train_data.npy  (N, H, W) spectrograms, 0-255 (112x112 in MultiBench)
    ROOT/audio/test_data.npy
    ROOT/train_labels.npy, ROOT/test_labels.npy

Image-folder + wav layout (the Harmonic-NAS repository's; ``image``/``audio`` also accepted)::

    ROOT/mnist/{train,test[,val]}/<digit>/*.png
    ROOT/sound_450/{train,test[,val]}/<digit>/*.wav

In the folder layout each image is paired with a recording of its digit, round-robin over the
sorted files; audio becomes a 20x20 MFCC (``AVMNIST_PAPER_MFCC``). Without a ``val`` folder the
last twelfth of each digit's images and recordings form val, so no file is in two splits.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from hnas_edge.data.audio import AVMNIST_PAPER_MFCC, mfcc, read_wav
from hnas_edge.data.base import (
    LazyDataset,
    MultimodalDataset,
    Normalization,
    TensorDataset,
    check_split,
    fit_stats,
    require_files,
)
from hnas_edge.data.images import read_image
from hnas_edge.errors import HnasError

MODALITIES = ("image", "audio")
N_CLASSES = 10
NPY_FILES = (
    "image/train_data.npy",
    "image/test_data.npy",
    "audio/train_data.npy",
    "audio/test_data.npy",
    "train_labels.npy",
    "test_labels.npy",
)
IMAGE_DIRS = ("mnist", "image")
AUDIO_DIRS = ("sound_450", "audio", "sound")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VAL_FRACTION = 1 / 12


def load_avmnist(
    root: str | Path, split: str = "train", normalize: bool = True
) -> MultimodalDataset:
    """One split of AV-MNIST from ``root``: MultiBench npy or image-folder + wav layout."""
    root, split = Path(root), check_split(split)
    if not root.is_dir():
        raise HnasError(f"AV-MNIST folder not found: {root}; pass the folder with --data-dir")
    if (root / "image").is_dir() and (root / "image" / "train_data.npy").exists():
        return _load_npy(root, split, normalize)
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d / "train").is_dir()), None)
    audio_dir = next((root / d for d in AUDIO_DIRS if (root / d / "train").is_dir()), None)
    if image_dir is not None and audio_dir is not None:
        return _load_folders(root, image_dir, audio_dir, split, normalize)
    raise HnasError(
        f"{root} is not an AV-MNIST dataset: expected MultiBench's {', '.join(NPY_FILES)} or "
        f"mnist/{{train,test}}/<digit>/*.png with sound_450/{{train,test}}/<digit>/*.wav"
    )


def _npy_rows(n_train: int, n_test: int) -> dict[str, tuple[str, np.ndarray]]:
    """Which file (train or test) and which rows of it make each split."""
    n_val = int(round(n_train * VAL_FRACTION))
    return {
        "train": ("train", np.arange(n_train - n_val)),
        "val": ("train", np.arange(n_train - n_val, n_train)),
        "test": ("test", np.arange(n_test)),
    }


def _load_npy(root: Path, split: str, normalize: bool) -> MultimodalDataset:
    require_files(root, NPY_FILES, "AV-MNIST (MultiBench npy)")
    arrays = {}
    for source in ("train", "test"):
        image = np.load(root / "image" / f"{source}_data.npy", mmap_mode="r")
        audio = np.load(root / "audio" / f"{source}_data.npy", mmap_mode="r")
        labels = np.load(root / f"{source}_labels.npy")
        if not len(image) == len(audio) == len(labels):
            raise HnasError(
                f"AV-MNIST {source} files under {root} differ in length (image {len(image)}, "
                f"audio {len(audio)}, labels {len(labels)}); re-export them"
            )
        arrays[source] = (image, audio, labels)

    def fetcher(source: str, rows: np.ndarray):
        image, audio, labels = arrays[source]

        def fetch(i: int) -> tuple[dict[str, np.ndarray], int]:
            row = int(rows[i])
            x_image = np.asarray(image[row], dtype=np.float32).reshape(1, 28, 28) / 255.0
            x_audio = np.asarray(audio[row], dtype=np.float32)[None] / 255.0
            return {"image": x_image, "audio": x_audio}, int(labels[row])

        return fetch

    rows = _npy_rows(len(arrays["train"][2]), len(arrays["test"][2]))
    train_fetch = fetcher(*rows["train"])
    stats = fit_stats(train_fetch, len(rows["train"][1]), MODALITIES)
    shapes = {m: x.shape for m, x in train_fetch(0)[0].items()}
    source, split_rows = rows[split]
    return LazyDataset(
        "avmnist",
        split,
        len(split_rows),
        fetcher(source, split_rows),
        N_CLASSES,
        "multiclass",
        stats,
        shapes,
        normalize,
    )


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[int, list[Path]]:
    """Sorted files per digit sub-folder."""
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
        out[int(sub.name)] = sorted(p for p in sub.iterdir() if p.suffix.lower() in suffixes)
    return out


def _carve(items: list[Path], part: str) -> list[Path]:
    n_val = max(1, round(len(items) * VAL_FRACTION)) if len(items) >= 2 else 0
    return items[: len(items) - n_val] if part == "train" else items[len(items) - n_val :]


def _pairs(image_dir: Path, audio_dir: Path, split: str) -> list[tuple[Path, Path, int]]:
    has_val = (image_dir / "val").is_dir() and (audio_dir / "val").is_dir()
    folder = "train" if split == "val" and not has_val else split
    if not (image_dir / folder).is_dir() or not (audio_dir / folder).is_dir():
        raise HnasError(
            f"AV-MNIST split folder missing: expected {image_dir / folder} and {audio_dir / folder}"
        )
    images = _files(image_dir / folder, IMAGE_SUFFIXES)
    sounds = _files(audio_dir / folder, (".wav",))
    pairs = []
    for digit, digit_images in images.items():
        digit_sounds = sounds.get(digit, [])
        if folder != split or (split == "train" and not has_val):
            digit_images, digit_sounds = _carve(digit_images, split), _carve(digit_sounds, split)
        if digit_images and not digit_sounds:
            raise HnasError(
                f"AV-MNIST has {split} images of digit {digit} but no recordings: add .wav files "
                f"under {audio_dir / folder / str(digit)}"
            )
        pairs += [
            (p, digit_sounds[k % len(digit_sounds)], digit) for k, p in enumerate(digit_images)
        ]
    if not pairs:
        raise HnasError(f"no AV-MNIST {split} images under {image_dir / folder}/<digit>/")
    return pairs


@lru_cache(maxsize=6)
def _featurise(
    image_dir: Path, audio_dir: Path, split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pairs = _pairs(image_dir, audio_dir, split)
    audio_cache: dict[Path, np.ndarray] = {}
    for _, wav, _ in pairs:
        if wav not in audio_cache:
            audio_cache[wav] = mfcc(read_wav(wav)[1], AVMNIST_PAPER_MFCC)[None]
    images = np.stack([read_image(p, mode="L") for p, _, _ in pairs])
    audio = np.stack([audio_cache[w] for _, w, _ in pairs])
    return images, audio, np.array([d for _, _, d in pairs])


def _load_folders(
    root: Path, image_dir: Path, audio_dir: Path, split: str, normalize: bool
) -> MultimodalDataset:
    train_images, train_audio, _ = _featurise(image_dir, audio_dir, "train")
    stats = {
        "image": Normalization.fit(train_images, channel_axis=None),
        "audio": Normalization.fit(train_audio, channel_axis=None),
    }
    images, audio, labels = _featurise(image_dir, audio_dir, split)
    return TensorDataset(
        "avmnist",
        split,
        {"image": images, "audio": audio},
        labels,
        N_CLASSES,
        "multiclass",
        stats,
        normalize,
    )
