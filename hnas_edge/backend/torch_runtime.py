"""torch: the runtime of the `gpu` profile (CUDA, CUDA events, optional CUDA graphs), and a CPU
fallback. It times torch modules directly (``Source.MODULE``); it cannot read ONNX files.

On a GPU, eager launches are timed as Python overhead (an MBConv block: 190–330 µs eager vs 26–30
µs replayed as a graph on an H100, measured by us), so the `gpu` profile replays each part as a CUDA
graph, which is what a TensorRT enqueue also avoids.

On the CPU, ``threads`` is torch's intra-op thread count from ``load`` to ``close``: set
when a module is loaded, the caller's count restored when it is closed (torch's count is
process-wide, and a runtime is a library object, not the process's owner).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hnas_edge.backend.base import Inputs, Runtime, Source
from hnas_edge.backend.timing import LatencyStats, Timing, TimingSettings, time_callable
from hnas_edge.errors import HnasError


class TorchRuntime(Runtime):
    name = "torch"
    accepts = frozenset({Source.MODULE})

    def __init__(
        self,
        threads: int = 1,
        precision: str = "fp32",
        cuda_graphs: bool = False,
        device: str | None = None,
        **_: Any,
    ) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.threads, self.precision = threads, precision
        self._caller_threads: int | None = None  # while a module is loaded on the CPU
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        if precision == "int8":
            raise HnasError("the torch runtime times fp32 or fp16; int8 needs the tensorrt runtime")
        self.module = None
        self.graph = None

    def _load(self, source: Source, model: Any, input_names: Sequence[str]) -> None:
        if self.device.type == "cpu" and self._caller_threads is None:
            self._caller_threads = self.torch.get_num_threads()
            self.torch.set_num_threads(self.threads)
        dtype = self.torch.float16 if self._half else self.torch.float32
        self.module = model.eval().to(self.device, dtype)
        self.names = list(input_names)
        self.graph = None

    @property
    def _half(self) -> bool:
        return self.precision == "fp16" and self.device.type == "cuda"

    def _tensors(self, inputs: Inputs) -> list[Any]:
        dtype = self.torch.float16 if self._half else self.torch.float32
        return [self.torch.as_tensor(inputs[n]).to(self.device, dtype) for n in self.names]

    def prepare(self, inputs: Inputs) -> list[Any]:
        tensors = self._tensors(inputs)
        if self.cuda_graphs:
            self._capture(tensors)
        return tensors

    def _capture(self, tensors: list[Any]) -> None:
        """Record one call as a CUDA graph (after warm-up on a side stream, as torch requires)."""
        torch = self.torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(3):
                self.module(*tensors)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.module(*tensors)

    def run_prepared(self, prepared: list[Any]) -> object:
        if self.graph is not None:
            self.graph.replay()
            return None
        with self.torch.no_grad():
            return self.module(*prepared)

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        if self.module is None:
            raise HnasError("no module loaded; call load() first")
        with self.torch.no_grad():
            out = self.module(*self._tensors(inputs))
        outs = out if isinstance(out, tuple | list) else (out,)
        return [o.float().cpu().numpy() for o in outs]

    def time(self, inputs: Inputs, settings: TimingSettings) -> Timing:
        prepared = self.prepare(inputs)
        call = lambda: self.run_prepared(prepared)  # noqa: E731
        if self.device.type != "cuda":
            return time_callable(call, settings)
        return time_callable(call, settings, clock=self._synced_clock, timed=self._cuda_events)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _synced_clock(self) -> int:
        self.synchronize()
        return time.perf_counter_ns()

    def _cuda_events(self, call: Any, settings: TimingSettings) -> LatencyStats:
        """Time each call between two CUDA events around its enqueue."""
        torch = self.torch
        samples: list[float] = []
        start_time = time.perf_counter()
        while len(samples) < settings.min_iters or time.perf_counter() - start_time < (
            settings.min_time_s
        ):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            call()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end))
        return LatencyStats.from_samples(samples)

    def close(self) -> None:
        self.module, self.graph = None, None
        if self._caller_threads is not None:
            self.torch.set_num_threads(self._caller_threads)
            self._caller_threads = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "version": self.torch.__version__,
            "device": str(self.device),
            "threads": self.threads,
            "cuda_graphs": self.cuda_graphs,
            "precision": self.precision,
        }
        if self.device.type == "cuda":
            info["gpu"] = self.torch.cuda.get_device_name(self.device)
            info["cuda"] = self.torch.version.cuda
            info["cudnn"] = self.torch.backends.cudnn.version()
        return info
