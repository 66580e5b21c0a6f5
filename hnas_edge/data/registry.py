"""``load_dataset``: one entry point from a dataset name to a split, used by training and search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hnas_edge.data.avdigits import load_avdigits
from hnas_edge.data.avmnist import load_avmnist
from hnas_edge.data.base import MultimodalDataset
from hnas_edge.data.memes import load_memes
from hnas_edge.data.mmimdb import load_mmimdb
from hnas_edge.errors import HnasError

_ON_DISK: dict[str, Callable[..., MultimodalDataset]] = {
    "avmnist": load_avmnist,
    "mmimdb": load_mmimdb,
    "memes": load_memes,
}
DATASET_NAMES = ("avdigits", *_ON_DISK)


def load_dataset(
    name: str, data_dir: str | Path | None = None, split: str = "train", normalize: bool = True
) -> MultimodalDataset:
    """One split (``train``, ``val`` or ``test``) of a dataset by name.

    ``avdigits`` is bundled (``data_dir`` may name a folder holding another ``avdigits.npz``);
    the others read the user's copy under ``data_dir`` (layouts in docs/datasets.md).
    """
    if name == "avdigits":
        path = Path(data_dir) / "avdigits.npz" if data_dir is not None else None
        return load_avdigits(split, path=path, normalize=normalize)
    if name not in _ON_DISK:
        raise HnasError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if data_dir is None:
        raise HnasError(f"dataset {name!r} is read from disk; pass its folder with --data-dir")
    return _ON_DISK[name](data_dir, split=split, normalize=normalize)
