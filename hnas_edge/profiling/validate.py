"""`hnas lut validate`: the LUT's sums against whole networks measured end to end.

N random whole networks of the space are built, exported and timed with the device's runtime
and settings, exactly as the parts were, at the LUT's batch size. Half of them (every other one)
fit the calibration ``a·sum + c·n_parts + b``; the other half, which the fit never saw, report how
close the LUT comes before and after calibration. The calibration is stored in the LUT
(atomically).
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.errors import HnasError
from hnas_edge.profiling.cost import predict, require_keys
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.fidelity import Fidelity, fidelity, fit_calibration
from hnas_edge.profiling.lut import Calibration, Lut
from hnas_edge.profiling.profiler import load_part
from hnas_edge.profiling.runtimes import Runtime, get_runtime
from hnas_edge.profiling.state import machine_load
from hnas_edge.space.mmnn import arch_parts, build_fresh, random_arch
from hnas_edge.space.presets import get_preset

#: Networks a held-out fit needs: half fit three parameters (with one to spare), half test it.
MIN_SAMPLES = 8
#: Share of held-out networks within ±10% after calibration below which validate says so.
FIDELITY_TARGET = 0.9


@dataclass(frozen=True)
class NetworkMeasurement:
    arch: dict[str, Any]
    n_parts: int
    latency_sum_ms: float
    latency_ms: float
    energy_sum_mj: float | None
    energy_mj: float | None


@dataclass(frozen=True)
class MetricReport:
    """One metric (latency or energy): fidelity before and after calibration on held-out nets."""

    calibration: Calibration
    before: Fidelity
    after: Fidelity


@dataclass(frozen=True)
class ValidationReport:
    networks: tuple[NetworkMeasurement, ...]
    latency: MetricReport
    energy: MetricReport | None
    load: dict[str, Any] = field(default_factory=dict)  # the machine's, before and after
    batch: int = 1  # samples per call, the LUT's: every figure is per batch

    @property
    def below_target(self) -> bool:
        """Fewer than :data:`FIDELITY_TARGET` of the held-out networks within ±10% after
        calibration: the LUT does not predict this device's networks well enough."""
        return self.latency.after.within_10 < FIDELITY_TARGET

    def to_dict(self) -> dict[str, Any]:
        def metric(report: MetricReport | None) -> dict[str, Any] | None:
            if report is None:
                return None
            return {
                "calibration": report.calibration.to_dict(),
                "held_out_before": report.before.to_dict(),
                "held_out_after": report.after.to_dict(),
            }

        return {
            "n": len(self.networks),
            "batch": self.batch,
            "latency": metric(self.latency),
            "energy": metric(self.energy),
            "load": self.load,
        }


def measure_network(
    lut: Lut,
    device: DeviceProfile,
    runtime: Runtime,
    energy: EnergyMeasurer | None,
    arch_dict: dict[str, Any],
    seed: int,
) -> NetworkMeasurement:
    """Build, export and time one whole network at the LUT's batch; price it from the LUT
    (uncalibrated sums)."""
    import torch

    from hnas_edge.space.mmnn import MultimodalArch

    arch = MultimodalArch.from_dict(arch_dict)
    preset = get_preset(arch.preset)
    parts = arch_parts(preset, arch)
    cost = predict(lut, parts)
    torch.manual_seed(seed)
    net = build_fresh(preset, arch).eval()
    example = net.example_inputs(lut.batch)  # the batch its parts were measured at
    with tempfile.TemporaryDirectory(prefix="hnas-net-") as tmp:
        inputs = load_part(runtime, net, example, Path(tmp))
        try:
            timing = runtime.time(inputs, device.timing)
            latency = float(timing.stats.median)
            energy_mj = None
            if energy is not None:
                energy_mj = energy.of_runtime(runtime, inputs, latency).get("total")
        finally:
            runtime.close()
    return NetworkMeasurement(
        arch=arch_dict,
        n_parts=len(parts),
        latency_sum_ms=cost.latency_sum_ms,
        latency_ms=latency,
        energy_sum_mj=cost.energy_sum_mj,
        energy_mj=energy_mj,
    )


def _metric(sums: list[float], n_parts: list[int], measured: list[float]) -> MetricReport:
    fit, held = slice(0, None, 2), slice(1, None, 2)
    calibration = fit_calibration(sums[fit], n_parts[fit], measured[fit])
    held_sums, held_parts, held_measured = sums[held], n_parts[held], measured[held]
    after = [calibration.apply(s, n) for s, n in zip(held_sums, held_parts, strict=True)]
    return MetricReport(
        calibration=calibration,
        before=fidelity(held_sums, held_measured),
        after=fidelity(after, held_measured),
    )


def validate(
    lut_path: Path,
    device: DeviceProfile,
    space: str,
    samples: int,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Measure ``samples`` random networks, fit and store the calibration, report fidelity."""
    if samples < MIN_SAMPLES:
        raise HnasError(
            f"--samples {samples} is too few for a held-out fit: give at least {MIN_SAMPLES} "
            f"({MIN_SAMPLES // 2} networks fit the three parameters of a·sum + c·n_parts + b, "
            f"{MIN_SAMPLES // 2} held out test it)"
        )
    lut = Lut.load(lut_path)
    if lut.device.get("name") != device.name or lut.device.get("runtime") != device.runtime:
        raise HnasError(
            f"{lut_path} was profiled on {lut.device.get('name')} with "
            f"{lut.device.get('runtime')}; validate it with that --device"
        )
    preset = get_preset(space)
    require_keys(lut, [spec.key for spec in preset.all_specs()], f"space {space}")
    before = machine_load()
    runtime = get_runtime(device.runtime, **device.runtime_options())
    measurer = EnergyMeasurer.for_device(device)
    energy = None if measurer.source == "estimate" else measurer
    rng = random.Random(seed)
    networks = []
    for i in range(samples):
        if on_progress:
            on_progress(i, samples)
        arch = random_arch(preset, rng).to_dict()
        networks.append(measure_network(lut, device, runtime, energy, arch, seed + i))
    if on_progress:
        on_progress(samples, samples)
    n_parts = np.array([n.n_parts for n in networks])
    latency = _metric(
        np.array([n.latency_sum_ms for n in networks]),
        n_parts,
        np.array([n.latency_ms for n in networks]),
    )
    energy_report = None
    if energy is not None and all(n.energy_mj and n.energy_sum_mj for n in networks):
        energy_report = _metric(
            np.array([n.energy_sum_mj for n in networks]),
            n_parts,
            np.array([n.energy_mj for n in networks]),
        )
    lut.calibration["latency"] = latency.calibration
    if energy_report is not None:
        lut.calibration["energy"] = energy_report.calibration
    elif measurer.source == "estimate":
        # Estimated energy is nominal power × time: the latency calibration, in millijoules.
        lat, power = latency.calibration, device.nominal_power_w
        lut.calibration["energy"] = Calibration(lat.a, lat.b * power, lat.c * power, lat.fitted_on)
    load = {"before": before, "after": machine_load()}
    report = ValidationReport(tuple(networks), latency, energy_report, load, lut.batch)
    lut.extra["validation"] = {"space": space, "seed": seed, **report.to_dict()}
    lut.save(lut_path)
    return report


def validate_with_progress(
    lut_path: Path, device: DeviceProfile, space: str, samples: int, seed: int, console: Any
) -> ValidationReport:
    from hnas_edge.reporting import progress_bar

    with progress_bar(console) as bar:
        task = bar.add_task(f"measuring {space} networks", total=samples, detail="")
        return validate(
            lut_path, device, space, samples, seed, lambda done, _: bar.update(task, completed=done)
        )
