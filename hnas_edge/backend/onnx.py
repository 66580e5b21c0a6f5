"""Export any module of the model library to ONNX, and check it against torch with onnxruntime
(the reference run every export and plan is compared with).

One function serves a single block (what the profiler measures), an extracted subnet and a whole
multimodal network: inputs are given by name, in the order ``forward`` takes them, and become
the ONNX graph's input names. The file is written atomically.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hnas_edge.backend.base import Source
from hnas_edge.errors import HnasError
from hnas_edge.io import atomic_write_bytes

OPSET = 17


def _as_tuple(outputs: object) -> tuple[torch.Tensor, ...]:
    if isinstance(outputs, torch.Tensor):
        return (outputs,)
    return tuple(outputs)  # type: ignore[arg-type]


def export_onnx(
    module: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    path: str | Path,
    opset: int = OPSET,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``module`` (in eval mode) as ONNX with named inputs ``inputs`` and outputs
    ``output`` (or ``output0``, ``output1``... when ``forward`` returns several)."""
    path = Path(path)
    module = module.eval()
    args = tuple(inputs.values())
    with torch.no_grad():
        n_outputs = len(_as_tuple(module(*args)))
    output_names = ["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)]
    axes = None
    if dynamic_batch:
        axes = {name: {0: "batch"} for name in [*inputs, *output_names]}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,
            input_names=list(inputs),
            output_names=output_names,
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False,
        )
    atomic_write_bytes(path, buffer.getvalue())
    return path


def graph_inputs(path: str | Path) -> set[str]:
    """The input names an ONNX file's graph kept (an exporter drops an input nobody reads)."""
    import onnx

    return {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}


def run_onnx(path: str | Path, inputs: Mapping[str, np.ndarray], threads: int = 1) -> list:
    """Outputs of an ONNX file under onnxruntime's CPU provider, the reference every export is
    checked against. Inputs the graph does not read (the exporter drops a modality the fusion
    network never reads) are left out."""
    from hnas_edge.backend.onnxruntime import OnnxRuntime

    with OnnxRuntime(threads=threads) as runtime:
        runtime.load(Source.ONNX, path)
        return runtime.run(inputs)


@dataclass(frozen=True)
class Parity:
    """How far onnxruntime's outputs are from torch's, over all outputs."""

    max_abs_diff: float
    n_outputs: int

    def ok(self, tolerance: float = 1e-4) -> bool:
        return self.max_abs_diff <= tolerance


def onnx_parity(module: nn.Module, inputs: Mapping[str, torch.Tensor], path: str | Path) -> Parity:
    """Run the exported ``path`` and ``module`` on the same inputs and compare."""
    with torch.no_grad():
        expected = [t.numpy() for t in _as_tuple(module.eval()(*inputs.values()))]
    actual = run_onnx(path, {k: v.numpy() for k, v in inputs.items()})
    if len(actual) != len(expected):
        raise HnasError(
            f"{path} has {len(actual)} outputs where the model has {len(expected)}; re-export it"
        )
    diff = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected, strict=True))
    return Parity(diff, len(expected))
