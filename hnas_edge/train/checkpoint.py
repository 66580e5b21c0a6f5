"""Checkpoints that load with ``torch.load(..., weights_only=True)``: tensors and plain types only,
every tensor saved on the CPU (whatever device it was trained on), so that a checkpoint loads
and exports on a machine without that device.

Python's and torch's random states are stored as tensors/lists so that a resumed run draws the
same subnets and batches as an uninterrupted one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import torch

from hnas_edge.accelerator import to_cpu
from hnas_edge.errors import HnasError
from hnas_edge.io import atomic_write_bytes


def python_rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_python_rng_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(to_cpu(payload), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise HnasError(f"{path} not found; train first with `hnas train`") from None
    except Exception as exc:  # unpickling errors of many kinds: one line for the user
        raise HnasError(
            f"{path} is not a loadable checkpoint ({type(exc).__name__}); retrain or restore it"
        ) from None
