"""The one interface every runtime implements (Polygraphy's runner split, in small)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.timing import Timing, TimingSettings, time_callable

Inputs = Mapping[str, np.ndarray]


class Runtime(ABC):
    """Load an ONNX model, run it, time it. One instance serves one model at a time.

    A runtime that times torch modules rather than ONNX files sets ``accepts_modules`` and
    implements ``load_module(module, example_inputs)``.
    """

    name: str = ""
    accepts_modules: bool = False

    @abstractmethod
    def load(self, onnx_path: str | Path) -> None: ...

    @abstractmethod
    def run(self, inputs: Inputs) -> list[np.ndarray]: ...

    def prepare(self, inputs: Inputs) -> Any:
        """Inputs in the runtime's own form, made once before timing (default: unchanged)."""
        return inputs

    def run_prepared(self, prepared: Any) -> object:
        """One call on prepared inputs; what is timed."""
        return self.run(prepared)

    def synchronize(self) -> None:
        """Wait for calls still queued on the device (default: calls are synchronous)."""
        return None

    def time(self, inputs: Inputs, settings: TimingSettings) -> Timing:
        prepared = self.prepare(inputs)
        return time_callable(lambda: self.run_prepared(prepared), settings)

    @abstractmethod
    def close(self) -> None:
        """Release the loaded model."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Name, version and settings, recorded in the LUT."""
