"""onnxruntime: the CPU runtime of the embedded default (and CUDA where its build has it), and
the one place an onnxruntime session is set up (:func:`ort_session`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.base import Inputs, Runtime, Source
from hnas_edge.errors import HnasError, MissingLibraryError

CPU = ("CPUExecutionProvider",)


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingLibraryError(
            "onnxruntime", "pip install onnxruntime", "the onnxruntime runtime"
        ) from None
    return onnxruntime


def ort_session(
    path: str | Path,
    threads: int = 1,
    providers: Sequence[str] = CPU,
    optimized_path: str | Path | None = None,
) -> Any:
    """An ``InferenceSession`` of ``path``: ``threads`` intra-op threads, sequential, every
    graph optimisation; with ``optimized_path``, the optimised model is also saved there (in
    onnxruntime's ORT format where the name ends in ``.ort``). One line where it cannot load."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise HnasError(f"onnxruntime cannot load {path}: {exc}".splitlines()[0]) from None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    accepts = frozenset({Source.ONNX})

    def __init__(self, threads: int = 1, use_cuda: bool = False, **_: Any) -> None:
        self._ort = import_onnxruntime()
        self.threads = threads
        available = self._ort.get_available_providers()
        self.providers = list(CPU)
        if use_cuda and "CUDAExecutionProvider" in available:
            self.providers.insert(0, "CUDAExecutionProvider")
        self.session = None

    def _load(self, source: Source, model: Any, input_names: Sequence[str]) -> None:
        self.session = ort_session(model, self.threads, self.providers)
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
