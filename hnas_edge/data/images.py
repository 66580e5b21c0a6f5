"""Image decoding for the on-disk datasets (Pillow, imported lazily; it comes with matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hnas_edge.errors import HnasError, MissingLibraryError


def read_image(path: str | Path, mode: str = "RGB", size: int | None = None) -> np.ndarray:
    """Decode an image file to float32 ``(C, H, W)`` in [0, 1].

    With ``size``, the shorter side is resized to ``size`` (bicubic) and the centre
    ``size x size`` is kept, as the Harmonic-NAS memes pipeline does.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingLibraryError(
            "Pillow", "install it with `pip install pillow`", "image files"
        ) from None
    path = Path(path)
    try:
        with Image.open(path) as handle:
            image = handle.convert(mode)
    except FileNotFoundError:
        raise HnasError(f"image file not found: {path}; check the dataset folder") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise HnasError(f"{path} is not a readable image ({exc}); re-encode or remove it") from None
    if size is not None:
        scale = size / min(image.size)
        width, height = (
            max(size, round(image.width * scale)),
            max(size, round(image.height * scale)),
        )
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a ``(C, H, W)`` array to ``(C, size, size)`` (MM-IMDB posters)."""
    if image.shape[1:] == (size, size):
        return image
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))[None]
    out = torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False
    )
    return out[0].numpy()
