"""MM-IMDB from disk: movie posters (image) and text features (text), 23 genres, multi-label.

HDF5 layout (Arevalo et al.'s release; needs the optional ``h5py``)::

    ROOT/multimodal_imdb.hdf5   datasets images (N, 3, H, W) uint8, features (N, 300),
                                genres (N, 23), imdb_ids (N,)
    ROOT/mmimdb_split.json      {"train": [imdb id, ...], "dev": [...], "test": [...]} (optional;
                                without it MultiBench's contiguous 15,552 / 2,608 / rest split)

Per-sample layout (what the Harmonic-NAS ``prepare_mmimdb.py`` writes)::

    ROOT/{train,dev,test}/image_000000.npy, text_000000.npy, label_000000.npy, ...

Posters are resized to 224x224 as in the paper; the metric is weighted F1
(:func:`hnas_edge.data.metrics.weighted_f1`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hnas_edge.data.base import LazyDataset, check_split, fit_stats, require_files
from hnas_edge.data.images import resize
from hnas_edge.errors import HnasError, MissingLibraryError

MODALITIES = ("image", "text")
N_CLASSES = 23
IMAGE_SIZE = 224
HDF5_FILE = "multimodal_imdb.hdf5"
SPLIT_FILES = ("mmimdb_split.json", "split.json")
SPLIT_FOLDERS = {"train": "train", "val": "dev", "test": "test"}
MULTIBENCH_SIZES = {"train": 15552, "val": 2608}


def load_mmimdb(root: str | Path, split: str = "train", normalize: bool = True) -> LazyDataset:
    """One split of MM-IMDB from ``root`` (HDF5 + split json, or per-sample ``.npy`` folders)."""
    root, split = Path(root), check_split(split)
    if not root.is_dir():
        raise HnasError(f"MM-IMDB folder not found: {root}; pass the folder with --data-dir")
    if (root / HDF5_FILE).exists():
        fetchers = _hdf5_fetchers(root)
    elif (root / "train").is_dir():
        fetchers = {s: _npy_fetcher(root, s) for s in ("train", split)}
    else:
        raise HnasError(
            f"{root} is not an MM-IMDB dataset: expected {HDF5_FILE} (+ mmimdb_split.json) or "
            f"train/, dev/, test/ folders of image_NNNNNN.npy, text_NNNNNN.npy, label_NNNNNN.npy"
        )
    stats = fit_stats(*fetchers["train"], MODALITIES)
    fetch, length = fetchers[split]
    shapes = {m: np.asarray(x).shape for m, x in fetchers["train"][0](0)[0].items()}
    return LazyDataset(
        "mmimdb", split, length, fetch, N_CLASSES, "multilabel", stats, shapes, normalize
    )


def _sample(image: np.ndarray, text: np.ndarray, label: np.ndarray):
    image = resize(np.asarray(image, dtype=np.float32) / 255.0, IMAGE_SIZE)
    return {"image": image, "text": np.asarray(text, dtype=np.float32)}, np.asarray(
        label, dtype=np.float32
    )


def _npy_fetcher(root: Path, split: str):
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise HnasError(f"MM-IMDB split folder missing: {folder}; expected train/, dev/, test/")
    length = len(list(folder.glob("label_*.npy")))
    names = [f"{kind}_{i:06d}.npy" for i in range(length) for kind in ("image", "text", "label")]
    require_files(folder, names, f"MM-IMDB {SPLIT_FOLDERS[split]} (per-sample npy)")

    def fetch(i: int):
        return _sample(
            *(np.load(folder / f"{kind}_{i:06d}.npy") for kind in ("image", "text", "label"))
        )

    return fetch, length


def _split_rows(root: Path, ids: list[str]) -> dict[str, np.ndarray]:
    """Row indices of each split: by the split json's imdb ids, else MultiBench's ranges."""
    split_file = next((root / f for f in SPLIT_FILES if (root / f).exists()), None)
    if split_file is None:
        n_train, n_val = MULTIBENCH_SIZES["train"], MULTIBENCH_SIZES["val"]
        if len(ids) <= n_train + n_val:
            raise HnasError(
                f"{root / HDF5_FILE} has {len(ids)} samples, too few for MultiBench's split; "
                f"add mmimdb_split.json next to it"
            )
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
        bounds["test"] = (n_train + n_val, len(ids))
        return {s: np.arange(*b) for s, b in bounds.items()}
    try:
        split_ids = json.loads(split_file.read_text(encoding="utf-8"))
        position = {imdb_id: row for row, imdb_id in enumerate(ids)}
        return {s: np.array([position[i] for i in split_ids[f]]) for s, f in SPLIT_FOLDERS.items()}
    except json.JSONDecodeError as exc:
        raise HnasError(f"{split_file} is not valid JSON ({exc}); fix or re-download it") from None
    except KeyError as exc:
        raise HnasError(
            f"{split_file} does not match {HDF5_FILE}: {exc} is missing; it needs train/dev/test "
            f"lists of the file's imdb_ids"
        ) from None


def _hdf5_fetchers(root: Path):
    try:
        import h5py
    except ImportError:
        raise MissingLibraryError(
            "h5py", "install it with `pip install h5py`", f"reading MM-IMDB's {HDF5_FILE}"
        ) from None
    path = root / HDF5_FILE
    with h5py.File(path, "r") as handle:
        missing = [k for k in ("images", "features", "genres", "imdb_ids") if k not in handle]
        if missing:
            raise HnasError(f"{path} lacks dataset(s) {', '.join(missing)}; use the original file")
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in handle["imdb_ids"][:]]
    rows = _split_rows(root, ids)
    opened: dict[str, object] = {}

    def fetcher(split_rows: np.ndarray):
        def fetch(i: int):
            if opened.get("pid") != os.getpid():  # one handle per process (DataLoader workers)
                opened.update(pid=os.getpid(), file=h5py.File(path, "r"))
            handle, row = opened["file"], int(split_rows[i])
            return _sample(handle["images"][row], handle["features"][row], handle["genres"][row])

        return fetch, len(split_rows)

    return {s: fetcher(r) for s, r in rows.items()}
