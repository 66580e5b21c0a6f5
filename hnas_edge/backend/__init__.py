"""The backend under profiling, export and deploy: ONNX export and the reference onnxruntime run
(:mod:`.onnx`), and the runtimes, one module each, chosen by name from the device profile and
imported lazily, behind one interface (:mod:`.base`) with one timing loop (:mod:`.timing`).

:func:`load` is the one conversion between what a caller has and what a runtime reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.base import Closing, Inputs, Runtime, Source
from hnas_edge.errors import ConfigError

RUNTIMES = {
    "onnxruntime": ("hnas_edge.backend.onnxruntime", "OnnxRuntime"),
    "torch": ("hnas_edge.backend.torch_runtime", "TorchRuntime"),
    "tensorrt": ("hnas_edge.backend.tensorrt", "TensorRTRuntime"),
}


def get_runtime(name: str, **options: Any) -> Runtime:
    """A runtime by name (``with get_runtime(...) as runtime:`` releases its model after)."""
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    import importlib

    module, cls = RUNTIMES[name]
    return getattr(importlib.import_module(module), cls)(**options)


def load(
    runtime: Runtime, source: Source, model: Any, example: Mapping[str, Any], workdir: Path
) -> dict[str, np.ndarray]:
    """Load ``model`` (a ``source``) into ``runtime``, converting it where the runtime needs
    another source: a module is exported to ONNX in ``workdir`` for a runtime that reads ONNX
    but not modules. ``example`` holds the inputs by name, in the order ``forward`` takes them
    (tensors or arrays); returned as arrays, those the loaded graph reads (an exporter drops an
    input nobody reads). A source the runtime cannot take is refused in one line."""
    if source is Source.MODULE and source not in runtime.accepts and Source.ONNX in runtime.accepts:
        from hnas_edge.backend.onnx import export_onnx

        model, source = export_onnx(model, example, Path(workdir) / "model.onnx"), Source.ONNX
    runtime.load(source, model, list(example))
    kept: Any = example
    if source is Source.ONNX:
        from hnas_edge.backend.onnx import graph_inputs

        kept = graph_inputs(model)
    return {name: np.asarray(x) for name, x in example.items() if name in kept}


__all__ = ["RUNTIMES", "Closing", "Inputs", "Runtime", "Source", "get_runtime", "load"]
