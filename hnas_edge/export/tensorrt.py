"""TensorRT plans for `hnas export --format plan`: built on the device by the backend's TensorRT
runtime (same builder settings and timing cache as the LUT), INT8 calibrated on real samples.

TensorRT and cuda-python are imported lazily (by the runtime): on a machine without them this
module still imports, and building says in one line what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.base import Source
from hnas_edge.backend.tensorrt import TensorRTRuntime, check_feed, cuda_checked
from hnas_edge.io import atomic_write_bytes

Batch = dict[str, np.ndarray]


def entropy_calibrator(
    trt: Any, cudart: Any, batches: Sequence[Batch], cache: Path, batch_size: int = 1
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` (one dict of ``batch_size`` rows per
    step, the engine's batch) from device memory; the calibration table is kept in ``cache``
    and reused when present."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = list(batches)
            self.index = 0
            self.device: dict[str, int] = {}

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(self.batches):
                return None
            batch = self.batches[self.index]
            self.index += 1
            pointers = []
            for name in names:
                host = np.ascontiguousarray(batch[name], dtype=np.float32)
                check_feed(name, (batch_size, *host.shape[1:]), host.shape)
                if name not in self.device:
                    self.device[name] = cuda_checked(cudart.cudaMalloc(host.nbytes))
                kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
                cuda_checked(
                    cudart.cudaMemcpy(self.device[name], host.ctypes.data, host.nbytes, kind)
                )
                pointers.append(self.device[name])
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, table: bytes) -> None:
            atomic_write_bytes(cache, bytes(table))

    return Calibrator()


def build_plan(
    onnx_path: Path,
    precision: str,
    calibration: Sequence[Batch],
    calibration_cache: Path,
    batch: int = 1,
) -> bytes:
    """A plan of ``onnx_path``, whose inputs carry the batch (``batch`` rows per calibration
    step)."""
    with TensorRTRuntime(precision=precision) as runtime:
        calibrator = None
        if precision == "int8":
            calibrator = entropy_calibrator(
                runtime.trt, runtime.cudart, calibration, calibration_cache, batch
            )
        return runtime.build(onnx_path, calibrator=calibrator)


def run_plan(plan: bytes, batches: Sequence[Batch]) -> list[list[np.ndarray]]:
    """The plan's outputs for each batch (the engine deserialised once for all of them)."""
    with TensorRTRuntime() as runtime:
        runtime.load(Source.PLAN, plan)
        return [runtime.run(batch) for batch in batches]
