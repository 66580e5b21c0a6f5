"""Where training and search compute: ``--accelerator auto|cpu|cuda``.

A name is resolved once per process to a :class:`torch.device` (:func:`resolve`), and that device
is passed down to whatever trains or scores; nothing here sets a process-wide default device.
Random streams stay where they were: data order, subnet sampling and initial weights are drawn
on the CPU (networks are built on the CPU, then moved), so the CPU path is bit-for-bit what it
was and a CUDA run starts from the same weights and sees the same batches.

What is reproducible for a given seed:

* on the CPU, everything, bit for bit, whatever the number of threads or workers, on the same
  kind of CPU (another vector unit, AMX vs AVX-512 say, rounds sums otherwise: measured, the same
  seeded tiny search gave the same front and scores, and logits that moved by up to 4e-4);
* on CUDA with ``--deterministic``, a re-run on the same GPU model, driver and torch version
  (cuDNN's deterministic algorithms, torch's deterministic mode where it has one);
* on CUDA without it, close but not bit-identical results: cuDNN benchmarks and picks the
  fastest convolution algorithms (``torch.backends.cudnn.benchmark``), whose sums may round
  differently from run to run;
* never across devices: CUDA and the CPU round differently, so a search on a GPU and one on a
  CPU may rank candidates differently and end with another front;
* never across precisions: ``--amp bf16`` (the default on a GPU that has bfloat16) computes the
  forward passes in bfloat16, so its scores and derived networks differ from an fp32 run's.

Mixed precision (``--amp auto|off|bf16``, :class:`Precision`): forward passes and losses' inputs
under ``torch.autocast`` in bfloat16, the weights, their gradients, the optimiser state, batch
norm's running statistics and the losses in fp32. bfloat16 has fp32's exponent range, so no loss
scaling is needed; fp16 (which would need it) is not offered. ``auto`` is bf16 on a CUDA GPU that
supports it (Ampere and newer, Jetson Orin) and fp32 everywhere else, the CPU included: the CPU
path stays bit-for-bit fp32 unless ``--amp bf16`` asks otherwise (on a CPU with AVX512-BF16 it
made stage 2 1.7–1.8× faster and supernet training 1.4–1.6× slower: see the README).

Checkpoints and saved weights are always CPU tensors (:func:`to_cpu`), so a model trained or
searched on a GPU exports and deploys anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from hnas_edge.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "off", "bf16")


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


@dataclass(frozen=True)
class Precision:
    """What forward passes compute in on a device: fp32 (``dtype`` None) or ``dtype`` under
    ``torch.autocast``. Callers run forward passes through :meth:`forward` (or, where nothing
    trains, inside :meth:`autocast`), never a backward pass, and hand losses fp32 logits."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    @classmethod
    def of(cls, mode: str, device: torch.device) -> Precision:
        """``--amp mode`` on ``device``; one line where the mode is unknown or the GPU has no
        bfloat16."""
        if mode not in AMP_MODES:
            raise ConfigError(f"--amp {mode!r}: use one of {', '.join(AMP_MODES)}")
        bf16_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
        if mode == "bf16" and device.type == "cuda" and not bf16_gpu:
            raise ConfigError(
                f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16; "
                "use --amp off (fp32)"
            )
        if mode == "bf16" or (mode == "auto" and bf16_gpu):
            return cls(device.type, torch.bfloat16)
        return cls(device.type)

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def forward(self, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``compute()`` (a forward pass) under :meth:`autocast`, its output in fp32: what every
        loss and metric takes. In fp32 the very tensor ``compute`` returned."""
        with self.autocast():
            output = compute()
        return output.float()


FP32 = Precision()


@dataclass(frozen=True)
class Compute:
    """How training and search compute, as asked (``--accelerator``, ``--deterministic``,
    ``--amp``): picklable names, resolved by each process that computes (:meth:`setup`)."""

    accelerator: str = "cpu"  # auto, cpu or cuda
    deterministic: bool = False  # on CUDA: reproducible algorithms instead of the fastest
    amp: str = "auto"  # forward passes in bf16 (bf16), fp32 (off), bf16 on a GPU that has it (auto)

    def setup(self) -> tuple[torch.device, Precision]:
        """This process's device (configured) and precision; one line where either cannot be."""
        device = resolve(self.accelerator)
        precision = Precision.of(self.amp, device)
        configure(device, self.deterministic)
        return device, precision

    def describe(self, device: torch.device, precision: Precision) -> dict[str, Any]:
        return describe(device, self.deterministic, precision)


def describe(
    device: torch.device, deterministic: bool = False, precision: Precision = FP32
) -> dict[str, Any]:
    """What computed a result, for its record (train.json, front.json, a candidate)."""
    record: dict[str, Any] = {"device": device.type, "precision": precision.name}
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
