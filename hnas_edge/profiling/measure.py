"""The one measurement path of the profiler, `hnas lut validate` and `hnas lut transfer`: a part
and a whole network are measured alike (:meth:`Bench.measure`): loaded in the device profile's
runtime (exported to ONNX where the runtime reads ONNX), timed with the profile's timing settings,
the energy of the timed call read from its meter, and the model released.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend import Closing, Runtime, Source, get_runtime, load
from hnas_edge.backend.timing import Timing
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.state import device_state
from hnas_edge.space.mmnn import MultimodalArch, build_fresh
from hnas_edge.space.presets import get_preset
from hnas_edge.space.specs import LayerSpec
from hnas_edge.torch_state import seeded


@dataclass(frozen=True)
class HostInfo:
    """What only the machine that measures knows: its meter, runtime, state and idle power.

    The single-process profiler records its own in the LUT header; a fleet driver has no runtime
    and records each node's as it reports (:mod:`hnas_edge.profiling.fleet`).
    """

    meter: str
    runtime_info: dict[str, Any]
    state: dict[str, Any]
    idle_power_w: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """A module measured: its timing, the energy of one call (the meter's record, or the
    labelled estimate) and when it was timed (the middle of the timing, seconds since the
    epoch)."""

    timing: Timing
    energy_mj: dict[str, Any]
    at: float


@dataclass(frozen=True)
class WholeNetwork:
    """One random network of a space measured end to end (energy None where it is not metered)."""

    arch: dict[str, Any]
    latency_ms: float
    energy_mj: float | None
    at: float | None = None  # when it was timed (seconds since the epoch), for drift correction


def batched_shapes(spec: LayerSpec, batch: int = 1) -> list[tuple[int, ...]]:
    """The spec's input shapes with ``batch`` samples in place of the first (batch-1) size."""
    return [(batch, *shape[1:]) for shape in spec.input_shapes()]


def random_inputs(spec: LayerSpec, seed: int, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for shape in batched_shapes(spec, batch)]


@dataclass(frozen=True)
class Bench(Closing):
    """The runtime and energy meter one machine measures with, built from the device profile
    (``with Bench.open(device) as bench:`` releases both)."""

    device: DeviceProfile
    runtime: Runtime
    energy: EnergyMeasurer

    @classmethod
    def open(cls, device: DeviceProfile) -> Bench:
        runtime = get_runtime(device.runtime, **device.runtime_options())
        return cls(device, runtime, EnergyMeasurer.for_device(device))

    def measure(self, module: Any, example: dict[str, Any]) -> Measurement:
        """Measure ``module`` on ``example`` (its inputs by name, in ``forward``'s order)."""
        with tempfile.TemporaryDirectory(prefix="hnas-measure-") as tmp, self.runtime:
            inputs = load(self.runtime, Source.MODULE, module, example, Path(tmp))
            start = time.time()
            timing = self.runtime.time(inputs, self.device.timing)
            at = (start + time.time()) / 2
            energy = self.energy.of_runtime(self.runtime, inputs, timing.stats.median)
        return Measurement(timing, energy, at)

    def measure_part(self, spec: LayerSpec, seed: int, batch: int = 1) -> dict[str, Any]:
        """One LUT entry: latency statistics and energy of ``spec`` on this device, per call of
        ``batch`` samples."""
        import torch

        arrays = random_inputs(spec, seed, batch)
        example = {f"input{i}": torch.from_numpy(a) for i, a in enumerate(arrays)}
        with seeded(seed):
            module = spec.build()
        measured = self.measure(module, example)
        return {
            "spec": spec.to_dict(),
            "latency_ms": measured.timing.stats.to_dict(),
            "energy_mj": measured.energy_mj,
            "attempts": measured.timing.attempts,
            "dropped_s": round(measured.timing.dropped_s, 3),
            "origin": {"kind": "measured"},
        }

    def measure_network(self, arch_dict: dict[str, Any], seed: int, batch: int = 1) -> WholeNetwork:
        """One whole network at ``batch``, measured exactly as a part is; its energy only where
        the meter measures (an estimate says nothing the latency does not)."""
        arch = MultimodalArch.from_dict(arch_dict)
        preset = get_preset(arch.preset)
        with seeded(seed):
            net = build_fresh(preset, arch).eval()
            example = net.example_inputs(batch)
        measured = self.measure(net, example)
        energy_mj = None if self.energy.estimated else measured.energy_mj.get("total")
        latency = float(measured.timing.stats.median)
        return WholeNetwork(arch=arch_dict, latency_ms=latency, energy_mj=energy_mj, at=measured.at)

    def host_info(self) -> HostInfo:
        """This machine's description (measures idle power on first use, before any part)."""
        return HostInfo(
            meter=self.energy.source,
            runtime_info=self.runtime.describe(),
            state=device_state(self.device),
            idle_power_w=self.energy.idle_w,
        )

    def close(self) -> None:
        self.runtime.close()
        self.energy.close()
