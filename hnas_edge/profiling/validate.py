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
from hnas_edge.outputs import lut_output
from hnas_edge.profiling.cost import predict, require_keys
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.fidelity import Fidelity, fidelity, fit_calibration
from hnas_edge.profiling.lut import Calibration, Lut
from hnas_edge.profiling.profiler import Bench, load_part
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


@dataclass(frozen=True)
class WholeNetwork:
    """One random network of a space measured end to end (energy None where it is not metered)."""

    arch: dict[str, Any]
    latency_ms: float
    energy_mj: float | None


def sample_archs(space: str, samples: int, seed: int = 0) -> list[dict[str, Any]]:
    """The architectures ``validate`` and ``transfer`` measure: the same ones for the same seed."""
    preset = get_preset(space)
    rng = random.Random(seed)
    return [random_arch(preset, rng).to_dict() for _ in range(samples)]


def time_network(
    bench: Bench, arch_dict: dict[str, Any], seed: int, batch: int = 1
) -> WholeNetwork:
    """Build, export and time one whole network at ``batch`` with the device's runtime and
    settings, exactly as the profiler times a part; meter its energy unless the meter is only
    an estimate."""
    import torch

    from hnas_edge.space.mmnn import MultimodalArch

    arch = MultimodalArch.from_dict(arch_dict)
    preset = get_preset(arch.preset)
    runtime, device = bench.runtime, bench.device
    torch.manual_seed(seed)
    net = build_fresh(preset, arch).eval()
    example = net.example_inputs(batch)
    with tempfile.TemporaryDirectory(prefix="hnas-net-") as tmp:
        inputs = load_part(runtime, net, example, Path(tmp))
        try:
            timing = runtime.time(inputs, device.timing)
            latency = float(timing.stats.median)
            energy_mj = None
            if not bench.energy.estimated:
                energy_mj = bench.energy.of_runtime(runtime, inputs, latency).get("total")
        finally:
            runtime.close()
    return WholeNetwork(arch=arch_dict, latency_ms=latency, energy_mj=energy_mj)


def measure_networks(
    bench: Bench,
    space: str,
    samples: int,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    batch: int = 1,
) -> list[WholeNetwork]:
    """``samples`` random networks of ``space`` (:func:`sample_archs`), each timed end to end
    at ``batch`` (the LUT's: the batch its parts were measured at)."""
    archs = sample_archs(space, samples, seed)
    networks = []
    for i, arch in enumerate(archs):
        if on_progress:
            on_progress(i, samples)
        networks.append(time_network(bench, arch, seed + i, batch))
    if on_progress:
        on_progress(samples, samples)
    return networks


def priced(lut: Lut, network: WholeNetwork) -> NetworkMeasurement:
    """A measured network beside the LUT's uncalibrated sums for it."""
    from hnas_edge.space.mmnn import MultimodalArch

    arch = MultimodalArch.from_dict(network.arch)
    parts = arch_parts(get_preset(arch.preset), arch)
    cost = predict(lut, parts)
    return NetworkMeasurement(
        arch=network.arch,
        n_parts=len(parts),
        latency_sum_ms=cost.latency_sum_ms,
        latency_ms=network.latency_ms,
        energy_sum_mj=cost.energy_sum_mj,
        energy_mj=network.energy_mj,
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
    """Measure ``samples`` random networks, fit and store the calibration, report fidelity.

    The LUT's writers' lock is held from the read to the write: a profile resuming the same LUT
    meanwhile is refused (it would skew these timings, and its new entries would be lost)."""
    if samples < MIN_SAMPLES:
        raise HnasError(
            f"--samples {samples} is too few for a held-out fit: give at least {MIN_SAMPLES} "
            f"({MIN_SAMPLES // 2} networks fit the three parameters of a·sum + c·n_parts + b, "
            f"{MIN_SAMPLES // 2} held out test it)"
        )
    Lut.load(lut_path)  # a missing or broken LUT is refused before the lock is taken
    with lut_output(lut_path, resume=True, flag=None):
        return _validate(lut_path, device, space, samples, seed, on_progress)


def _validate(
    lut_path: Path,
    device: DeviceProfile,
    space: str,
    samples: int,
    seed: int,
    on_progress: Callable[[int, int], None] | None,
) -> ValidationReport:
    lut = Lut.load(lut_path)  # what is on disk, now that no other writer can change it
    if lut.device.get("name") != device.name or lut.device.get("runtime") != device.runtime:
        raise HnasError(
            f"{lut_path} was profiled on {lut.device.get('name')} with "
            f"{lut.device.get('runtime')}; validate it with that --device"
        )
    preset = get_preset(space)
    require_keys(lut, [spec.key for spec in preset.all_specs()], f"space {space}")
    before = machine_load()
    bench = Bench.open(device)
    measured = measure_networks(bench, space, samples, seed, on_progress, lut.batch)
    networks = [priced(lut, network) for network in measured]
    n_parts = np.array([n.n_parts for n in networks])
    latency = _metric(
        np.array([n.latency_sum_ms for n in networks]),
        n_parts,
        np.array([n.latency_ms for n in networks]),
    )
    energy_report = None
    if not bench.energy.estimated and all(n.energy_mj and n.energy_sum_mj for n in networks):
        energy_report = _metric(
            np.array([n.energy_sum_mj for n in networks]),
            n_parts,
            np.array([n.energy_mj for n in networks]),
        )
    lut.calibration["latency"] = latency.calibration
    if energy_report is not None:
        lut.calibration["energy"] = energy_report.calibration
    elif bench.energy.estimated:
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

    with progress_bar(console, deferred=True) as bar:
        task = bar.add_task(f"measuring {space} networks", total=samples, detail="")
        return validate(
            lut_path, device, space, samples, seed, lambda done, _: bar.update(task, completed=done)
        )
