"""AV-digits: the small paired image + audio digit dataset shipped inside the package.

Built by ``scripts/build_avdigits.py`` from real MNIST digits (degraded by PCA) and real Free Spoken
Digit Dataset recordings (20x20 MFCC of noisy audio); see docs/datasets.md and
``bundled/LICENSE-avdigits.md`` (CC BY-SA 4.0). Reading it needs numpy and torch only.

The file stores uint8 arrays per split; ``image = u8 / 255`` and ``audio = u8 * audio_scale +
audio_offset`` (MFCC standardised per coefficient on the train split, then quantised).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.data.base import Normalization, TensorDataset, check_split
from hnas_edge.errors import HnasError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
DATA_FILE = BUNDLED_DIR / "avdigits.npz"
METADATA_FILE = BUNDLED_DIR / "avdigits.json"
MODALITIES = ("image", "audio")
N_CLASSES = 10


def _open(path: Path) -> Any:
    if not path.is_file():
        raise HnasError(
            f"AV-digits data file not found: {path}; reinstall hnas-edge or rebuild it with "
            f"scripts/build_avdigits.py"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise HnasError(f"AV-digits data file {path} is unreadable ({exc}); rebuild it") from None


def decode(arrays: Any, split: str) -> dict[str, np.ndarray]:
    """The float32 inputs, labels and provenance indices of one split of an opened file."""
    return {
        "image": arrays[f"{split}_image"].astype(np.float32) / 255.0,
        "audio": arrays[f"{split}_audio"].astype(np.float32) * np.float32(arrays["audio_scale"])
        + np.float32(arrays["audio_offset"]),
        "label": arrays[f"{split}_label"].astype(np.int64),
        "recording": arrays[f"{split}_recording"].astype(np.int64),
        "mnist_row": arrays[f"{split}_mnist_row"].astype(np.int64),
    }


def load_avdigits(
    split: str = "train", path: str | Path | None = None, normalize: bool = True
) -> TensorDataset:
    """One split of AV-digits as an in-memory dataset with modalities ``image`` and ``audio``.

    ``image`` is ``(1, 28, 28)``, ``audio`` is ``(1, 20, 20)`` (MFCC coefficients x frames);
    normalised with train-split statistics stored in the file. Extra attributes:
    ``recording`` (index into ``recording_names``), ``recording_names`` (FSDD file stems) and
    ``mnist_row`` (row of the MNIST sample the image came from), for provenance checks.
    """
    check_split(split)
    path = Path(path) if path is not None else DATA_FILE
    with _open(path) as arrays:
        data = decode(arrays, split)
        stats = {
            m: Normalization((float(arrays[f"{m}_mean"]),), (float(arrays[f"{m}_std"]),))
            for m in MODALITIES
        }
        names = arrays["recording_names"]
    dataset = TensorDataset(
        "avdigits",
        split,
        {m: data[m] for m in MODALITIES},
        data["label"],
        N_CLASSES,
        "multiclass",
        stats,
        normalize=normalize,
    )
    dataset.recording = data["recording"]
    dataset.mnist_row = data["mnist_row"]
    dataset.recording_names = names
    return dataset


def avdigits_metadata(path: str | Path | None = None) -> dict[str, Any]:
    """Provenance, licences and build settings of the shipped file (``avdigits.json``)."""
    path = Path(path) if path is not None else METADATA_FILE
    if not path.is_file():
        raise HnasError(f"AV-digits metadata not found: {path}; reinstall hnas-edge")
    return json.loads(path.read_text(encoding="utf-8"))
