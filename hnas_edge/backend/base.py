"""The one interface every runtime implements (Polygraphy's runner split, in small).

A runtime states which sources it loads (:attr:`Runtime.accepts`): a torch module, an ONNX file,
a TensorRT plan. The caller says which one it hands over; :func:`hnas_edge.backend.load` converts
a module to ONNX for a runtime that reads ONNX only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, TypeVar

import numpy as np

from hnas_edge.backend.timing import Timing, TimingSettings, time_callable
from hnas_edge.errors import HnasError

Inputs = Mapping[str, np.ndarray]


class Source(Enum):
    """What a runtime is given to load; the value names it in messages."""

    MODULE = "a torch module"
    ONNX = "an ONNX file"  # .onnx, or onnxruntime's own .ort format
    PLAN = "a TensorRT plan"


Closed = TypeVar("Closed", bound="Closing")


class Closing:
    """``with thing as t:`` for anything with a ``close()``: closed when the block ends,
    however it ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: Closed) -> Closed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Runtime(Closing, ABC):
    """Load a model, run it, time it. One instance serves one model at a time; leaving a
    ``with runtime:`` block releases the model (:meth:`close`), and the runtime can load
    another."""

    name: ClassVar[str] = ""
    accepts: ClassVar[frozenset[Source]] = frozenset()

    def load(self, source: Source, model: Any, input_names: Sequence[str] = ()) -> None:
        """Load ``model``, which is ``source``: a module (fed its inputs in the order of
        ``input_names``), the path of an ONNX file, a plan's path or bytes. A source this
        runtime does not read is refused in one line."""
        if source not in self.accepts:
            readable = " or ".join(s.value for s in Source if s in self.accepts)
            raise HnasError(
                f"the {self.name} runtime cannot load {source.value}; give it {readable}"
            )
        self._load(source, model, input_names)

    @abstractmethod
    def _load(self, source: Source, model: Any, input_names: Sequence[str]) -> None:
        """:meth:`load` for a source of :attr:`accepts`."""

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
