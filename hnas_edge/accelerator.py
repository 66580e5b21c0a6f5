"""Where training and search compute: ``--accelerator auto|cpu|cuda``.

A name is resolved once per process to a :class:`torch.device` (:func:`resolve`), and that device
is passed down to whatever trains or scores; nothing here sets a process-wide default device.
Random streams stay where they were: data order, subnet sampling and initial weights are drawn
on the CPU (networks are built on the CPU, then moved), so the CPU path is bit-for-bit what it
was and a CUDA run starts from the same weights and sees the same batches.

What is reproducible for a given seed:

* on the CPU, everything, bit for bit, whatever the number of threads or workers;
* on CUDA with ``--deterministic``, a re-run on the same GPU model, driver and torch version
  (cuDNN's deterministic algorithms, torch's deterministic mode where it has one);
* on CUDA without it, close but not bit-identical results: cuDNN benchmarks and picks the
  fastest convolution algorithms (``torch.backends.cudnn.benchmark``), whose sums may round
  differently from run to run;
* never across devices: CUDA and the CPU round differently, so a search on a GPU and one on a
  CPU may rank candidates differently and end with another front.

Checkpoints and saved weights are always CPU tensors (:func:`to_cpu`), so a model trained or
searched on a GPU exports and deploys anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from hnas_edge.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda")


def resolve(name: str) -> torch.device:
    """The device ``name`` means here: ``auto`` is CUDA when torch sees a GPU, else the CPU.

    In a Ray task given GPUs, Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it assigned, so
    ``cuda`` (device 0 of those visible) is the one Ray chose for the task.
    """
    if name not in ACCELERATORS:
        raise ConfigError(f"--accelerator {name!r}: use one of {', '.join(ACCELERATORS)}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            "--accelerator cuda: torch sees no CUDA GPU here (torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda}); "
            "use --accelerator cpu or auto, or install a CUDA build of torch"
        )
    return torch.device("cuda", torch.cuda.current_device())


def configure(device: torch.device, deterministic: bool = False) -> None:
    """cuDNN's settings for ``device``: benchmarked algorithms, or deterministic ones when
    ``deterministic``. Nothing changes on the CPU (whose results are deterministic already)."""
    if device.type != "cuda":
        return
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic results; it is read at its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def describe(device: torch.device, deterministic: bool = False) -> dict[str, Any]:
    """What computed a result, for its record (train.json, front.json, a candidate)."""
    record: dict[str, Any] = {"device": device.type}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record["deterministic"] = deterministic
        record["cudnn_benchmark"] = not deterministic
    return record


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested in dicts, lists, tuples) on the CPU. CPU tensors
    are returned as they are, not copied."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, Mapping):
        moved = type(value)((k, to_cpu(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):  # a state dict's module versions, for load_state_dict
            moved._metadata = value._metadata  # type: ignore[attr-defined]
        return moved
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak GPU memory this process allocates on ``device`` (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """Most bytes this process held allocated on ``device`` since :func:`reset_peak_memory`
    (None on the CPU). Per process: several workers sharing a GPU each count their own."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))
