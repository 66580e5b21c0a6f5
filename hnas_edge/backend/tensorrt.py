"""TensorRT: engines built on the device from ONNX, timed with CUDA events around the enqueue.

Two APIs exist in the field: TensorRT 8.2 (JetPack 4.6, the last for TX2) addresses I/O by binding
index (``execute_async_v2``); 8.5+ and 10.x by tensor name (``set_tensor_address``,
``execute_async_v3``; 10 removed the binding API). :func:`api_for_version` picks one; the rest is a
thin layer over the documented Python API. Device memory and events come from cuda-python
(``cudart``), or pycuda where that is what the device has. A timing cache file persists tactic
timings across builds, so profiling hundreds of parts does not re-time the same kernels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend.base import Inputs, Runtime, Source
from hnas_edge.backend.timing import LatencyStats, Timing, TimingSettings, time_callable
from hnas_edge.errors import HnasError, MissingLibraryError
from hnas_edge.io import atomic_write_bytes

WORKSPACE_BYTES = 1 << 30


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def api_for_version(version: str) -> str:
    """``"bindings"`` for TensorRT < 8.5 (index-addressed I/O), ``"tensors"`` from 8.5 on."""
    major_minor = _version_tuple(version)[:2]
    if major_minor < (8, 0):
        raise HnasError(f"TensorRT {version} is too old; hnas-edge needs 8.2 or newer")
    return "bindings" if major_minor < (8, 5) else "tensors"


def workspace_setter(version: str) -> str:
    """``max_workspace_size`` before 8.4, ``set_memory_pool_limit`` from 8.4 on."""
    return "max_workspace_size" if _version_tuple(version)[:2] < (8, 4) else "memory_pool"


def precision_flags(precision: str, fast_fp16: bool, fast_int8: bool) -> list[str]:
    """Builder flags for a precision, refused where the platform lacks fast support."""
    if precision == "fp32":
        return []
    if precision == "fp16":
        if not fast_fp16:
            raise HnasError('this GPU has no fast FP16; use precision = "fp32" in the profile')
        return ["FP16"]
    if precision == "int8":
        if not fast_int8:
            raise HnasError("this GPU has no fast INT8; use fp16 or fp32 in the profile")
        raise HnasError(
            "int8 engines need a calibration set, which per-part profiling does not have yet; "
            "profile in fp16"
        )
    raise HnasError(f"unknown precision {precision!r}; use fp32, fp16 or int8")


def check_feed(name: str, engine_shape: Any, given_shape: Any) -> None:
    """An engine's input shape is fixed when it is built, batch included: refuse other shapes
    rather than let numpy broadcast one sample over the engine's whole batch."""
    engine, given = tuple(int(d) for d in engine_shape), tuple(int(d) for d in given_shape)
    if engine != given:
        raise HnasError(
            f"input {name} has shape {given}; the engine takes {engine} (built at batch "
            f"{engine[0] if engine else '?'}): feed batches of that size or rebuild the engine"
        )


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise MissingLibraryError(
            "tensorrt",
            "JetPack ships it on Jetson; elsewhere `pip install tensorrt`",
            "the tensorrt runtime",
        ) from None
    return tensorrt


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise MissingLibraryError(
                "cuda-python", "pip install cuda-python", "TensorRT device buffers"
            ) from None
    return cudart


def cuda_checked(result: Any) -> Any:
    """cuda-python returns (error, *values); raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise HnasError(f"CUDA call failed with error {err}")
    return values[0] if len(values) == 1 else values


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    accepts = frozenset({Source.ONNX, Source.PLAN})

    def __init__(
        self,
        precision: str = "fp16",
        timing_cache: str | Path | None = None,
        **_: Any,
    ) -> None:
        self.trt = _import_tensorrt()
        self.cudart = _import_cudart()
        self.version = self.trt.__version__
        self.api = api_for_version(self.version)
        self.precision = precision
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        cache_dir = Path.home() / ".cache" / "hnas-edge"
        self.timing_cache = Path(timing_cache or cache_dir / f"trt-{self.version}.cache")
        self.stream = cuda_checked(self.cudart.cudaStreamCreate())
        self.engine = self.context = None
        self.buffers: dict[str, tuple[int, np.ndarray]] = {}

    # --- build --------------------------------------------------------------------------------

    def build(self, onnx_path: str | Path, calibrator: Any = None) -> bytes:
        """A serialised engine (plan) for this GPU, reusing and extending the timing cache.
        ``calibrator`` (an ``IInt8Calibrator``) calibrates INT8 on real data; without one an
        INT8 build keeps TensorRT's default dynamic ranges."""
        trt = self.trt
        builder = trt.Builder(self.logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise HnasError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if workspace_setter(self.version) == "memory_pool":
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        else:
            config.max_workspace_size = WORKSPACE_BYTES
        for flag in precision_flags(
            self.precision, builder.platform_has_fast_fp16, builder.platform_has_fast_int8
        ):
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if calibrator is not None:
            config.int8_calibrator = calibrator
        cached = self.timing_cache.read_bytes() if self.timing_cache.exists() else b""
        cache = config.create_timing_cache(cached)
        config.set_timing_cache(cache, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise HnasError(f"TensorRT could not build an engine for {onnx_path}")
        self.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def _load(self, source: Source, model: Any, input_names: Sequence[str]) -> None:
        """An ONNX file is built into an engine here; a plan (its bytes or its path) is
        deserialised as it is."""
        if source is Source.ONNX:
            plan = self.build(model)
        else:
            plan = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.close()
        runtime = self.trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise HnasError(
                "TensorRT could not deserialise the plan (built for another GPU "
                "or TensorRT version? rebuild it on this device)"
            )
        self.context = self.engine.create_execution_context()
        for name, shape, dtype, _ in self._io():
            host = np.empty(tuple(shape), dtype=self.trt.nptype(dtype))
            self.buffers[name] = (cuda_checked(self.cudart.cudaMalloc(host.nbytes)), host)
            if self.api == "tensors":
                self.context.set_tensor_address(name, self.buffers[name][0])
        self.inputs = [name for name, *_, is_input in self._io() if is_input]
        self.outputs = [name for name, *_, is_input in self._io() if not is_input]

    def _io(self) -> list[tuple[str, Any, Any, bool]]:
        """(name, shape, dtype, is_input) of every engine I/O tensor, in either API."""
        engine, trt = self.engine, self.trt
        if self.api == "bindings":
            return [
                (
                    engine.get_binding_name(i),
                    engine.get_binding_shape(i),
                    engine.get_binding_dtype(i),
                    engine.binding_is_input(i),
                )
                for i in range(engine.num_bindings)
            ]
        return [
            (
                name,
                engine.get_tensor_shape(name),
                engine.get_tensor_dtype(name),
                engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
            )
            for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))
        ]

    # --- run ----------------------------------------------------------------------------------

    def prepare(self, inputs: Inputs) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name in self.inputs:
            pointer, host = self.buffers[name]
            check_feed(name, host.shape, inputs[name].shape)
            np.copyto(host, inputs[name].astype(host.dtype, copy=False))
            cuda_checked(self.cudart.cudaMemcpy(pointer, host.ctypes.data, host.nbytes, kind))

    def enqueue(self) -> None:
        if self.api == "bindings":
            bindings = [int(self.buffers[name][0]) for name, *_ in self._io()]
            self.context.execute_async_v2(bindings=bindings, stream_handle=int(self.stream))
        else:
            self.context.execute_async_v3(stream_handle=int(self.stream))

    def run_prepared(self, prepared: Any) -> object:
        self.enqueue()
        return None

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        if self.engine is None:
            raise HnasError("no engine loaded; call load() first")
        self.prepare(inputs)
        self.enqueue()
        cuda_checked(self.cudart.cudaStreamSynchronize(self.stream))
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        outputs = []
        for name in self.outputs:
            pointer, host = self.buffers[name]
            cuda_checked(self.cudart.cudaMemcpy(host.ctypes.data, pointer, host.nbytes, kind))
            outputs.append(host.copy())
        return outputs

    def time(self, inputs: Inputs, settings: TimingSettings) -> Timing:
        self.prepare(inputs)
        return time_callable(self.enqueue, settings, clock=self._synced_clock, timed=self._events)

    def synchronize(self) -> None:
        cuda_checked(self.cudart.cudaStreamSynchronize(self.stream))

    def _synced_clock(self) -> int:
        self.synchronize()
        return time.perf_counter_ns()

    def _events(self, call: Any, settings: TimingSettings) -> LatencyStats:
        """CUDA events recorded on the stream around each enqueue."""
        cudart = self.cudart
        begin, end = cuda_checked(cudart.cudaEventCreate()), cuda_checked(cudart.cudaEventCreate())
        samples: list[float] = []
        started = time.perf_counter()
        try:
            while len(samples) < settings.min_iters or time.perf_counter() - started < (
                settings.min_time_s
            ):
                cuda_checked(cudart.cudaEventRecord(begin, self.stream))
                call()
                cuda_checked(cudart.cudaEventRecord(end, self.stream))
                cuda_checked(cudart.cudaEventSynchronize(end))
                samples.append(float(cuda_checked(cudart.cudaEventElapsedTime(begin, end))))
        finally:
            cudart.cudaEventDestroy(begin)
            cudart.cudaEventDestroy(end)
        return LatencyStats.from_samples(samples)

    def close(self) -> None:
        for pointer, _ in self.buffers.values():
            self.cudart.cudaFree(pointer)
        self.buffers = {}
        self.engine = self.context = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "api": self.api,
            "precision": self.precision,
            "timing_cache": str(self.timing_cache),
        }
