"""Harm-P (harmful US-politics memes) from disk: meme image + text features, 3 classes.

Layout (the Harm-P release's ``defaults`` folder, plus one features file per split)::

    ROOT/annotations/{train,val,test}.jsonl   {"id", "image", "labels": ["not harmful" |
                                               "somewhat harmful" | "very harmful", ...], "text"}
    ROOT/images/<image named in the jsonl>
    ROOT/text_features/{train,val,test}.npy    (N, D) float, row i = line i of the jsonl

Text features must be precomputed: the Harmonic-NAS code feeds its Maxout text backbone the 77
CLIP BPE token ids of the meme text, which needs CLIP's vocabulary file that we do not ship; any
vector of 77 values per meme works (what the memes preset's text backbone takes). Images: shorter
side to 112 (bicubic), centre 112x112 crop, CLIP's channel mean/std, as in the paper's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hnas_edge.data.base import LazyDataset, Normalization, check_split, require_files
from hnas_edge.data.images import read_image
from hnas_edge.errors import HnasError

MODALITIES = ("image", "text")
CLASSES = ("not harmful", "somewhat harmful", "very harmful")
IMAGE_SIZE = 112
CLIP_IMAGE_NORM = Normalization(
    (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
)


def expected_files(split: str) -> list[str]:
    return [f"annotations/{split}.jsonl", f"text_features/{split}.npy", "images"]


def read_annotations(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"image": row["image"], "label": CLASSES.index(row["labels"][0])})
        except json.JSONDecodeError as exc:
            raise HnasError(f"{path}:{number} is not valid JSON ({exc}); fix the line") from None
        except (KeyError, IndexError, TypeError):
            raise HnasError(
                f"{path}:{number} needs an 'image' name and 'labels' starting with one of "
                f"{', '.join(CLASSES)}"
            ) from None
        except ValueError:
            raise HnasError(
                f"{path}:{number} has label {row['labels'][0]!r}; "
                f"expected one of {', '.join(CLASSES)}"
            ) from None
    return rows


def _fetcher(root: Path, split: str):
    require_files(root, expected_files(split), f"Harm-P memes {split}")
    rows = read_annotations(root / "annotations" / f"{split}.jsonl")
    text = np.load(root / "text_features" / f"{split}.npy", mmap_mode="r")
    if text.ndim != 2 or len(text) != len(rows):
        raise HnasError(
            f"{root / 'text_features' / f'{split}.npy'} must hold one row per line of "
            f"annotations/{split}.jsonl ({len(rows)}), found shape {text.shape}"
        )

    def fetch(i: int) -> tuple[dict[str, np.ndarray], int]:
        image = read_image(root / "images" / rows[i]["image"], "RGB", IMAGE_SIZE)
        return {"image": image, "text": np.asarray(text[i], dtype=np.float32)}, rows[i]["label"]

    return fetch, len(rows), text


def load_memes(root: str | Path, split: str = "train", normalize: bool = True) -> LazyDataset:
    """One split of Harm-P from ``root`` (jsonl annotations, images, precomputed text features)."""
    root, split = Path(root), check_split(split)
    if not root.is_dir():
        raise HnasError(f"Harm-P memes folder not found: {root}; pass the folder with --data-dir")
    fetch, length, text = _fetcher(root, split)
    train_text = text if split == "train" else _fetcher(root, "train")[2]
    stats = {"image": CLIP_IMAGE_NORM, "text": Normalization.fit(train_text, channel_axis=None)}
    shapes = {"image": (3, IMAGE_SIZE, IMAGE_SIZE), "text": tuple(train_text.shape[1:])}
    return LazyDataset(
        "memes", split, length, fetch, len(CLASSES), "multiclass", stats, shapes, normalize
    )
