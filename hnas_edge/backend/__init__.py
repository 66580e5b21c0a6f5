"""Runtimes, one module each, chosen by name from the device profile; imported lazily."""

from __future__ import annotations

from typing import Any

from hnas_edge.backend.base import Runtime
from hnas_edge.errors import ConfigError

RUNTIMES = {
    "onnxruntime": ("hnas_edge.backend.onnxruntime", "OnnxRuntime"),
    "torch": ("hnas_edge.backend.torch_runtime", "TorchRuntime"),
    "tensorrt": ("hnas_edge.backend.tensorrt", "TensorRTRuntime"),
}


def get_runtime(name: str, **options: Any) -> Runtime:
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    import importlib

    module, cls = RUNTIMES[name]
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = ["RUNTIMES", "Runtime", "get_runtime"]
