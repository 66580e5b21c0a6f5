"""onnxruntime: the CPU runtime of the embedded default (and CUDA where its build has it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.base import Inputs, Runtime
from hnas_edge.errors import HnasError, MissingLibraryError


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, threads: int = 1, use_cuda: bool = False, **_: Any) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise MissingLibraryError(
                "onnxruntime", "pip install onnxruntime", "the onnxruntime runtime"
            ) from None
        self._ort = onnxruntime
        self.threads = threads
        available = onnxruntime.get_available_providers()
        self.providers = ["CPUExecutionProvider"]
        if use_cuda and "CUDAExecutionProvider" in available:
            self.providers.insert(0, "CUDAExecutionProvider")
        self.session = None

    def load(self, onnx_path: str | Path) -> None:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = self._ort.InferenceSession(
                str(onnx_path), options, providers=self.providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HnasError(f"onnxruntime cannot load {onnx_path}: {exc}".splitlines()[0]) from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    def prepare(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Only the inputs the graph reads (an exporter drops a modality nobody reads)."""
        return {name: np.ascontiguousarray(inputs[name]) for name in self.input_names}

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        if self.session is None:
            raise HnasError("no model loaded; call load() first")
        return self.session.run(None, self.prepare(inputs))

    def run_prepared(self, prepared: dict[str, np.ndarray]) -> object:
        return self.session.run(None, prepared)

    def close(self) -> None:
        self.session = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self._ort.__version__,
            "providers": self.providers,
            "threads": self.threads,
        }
