"""`hnas lut validate`: the LUT's sums against whole networks measured end to end.

N random whole networks of the space are built, exported and timed with the device's runtime
and settings, exactly as the parts were, at the LUT's batch size, on one core where the OS
allows, with the drift reference timed between them (:mod:`hnas_edge.profiling.drift`): each
network's latency is expressed at the speed the machine had while it profiled the LUT. Half of
them (every other one) fit two calibrations, the plain ``a·sum + c·n_parts + b`` and the per-kind
model of :mod:`hnas_edge.profiling.transfer` (one scale per kind of part, its grouping chosen by
leave-one-out); the other half, which the fits never saw, report how close the LUT comes before
and after calibration, and the calibration with the lower mean error on them is stored in the
LUT (atomically), both errors beside it.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.errors import HnasError
from hnas_edge.outputs import lut_output
from hnas_edge.profiling.cost import group_sums, predict, require_keys
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import (
    DriftSession,
    ReferenceTime,
    baseline_of,
    correction,
    drift_record,
    lut_baseline,
)
from hnas_edge.profiling.fidelity import Fidelity, fidelity, fit_calibration
from hnas_edge.profiling.lut import CALIBRATION_GROUPINGS, Calibration, Lut
from hnas_edge.profiling.pinning import pinned
from hnas_edge.profiling.profiler import Bench, load_part
from hnas_edge.profiling.state import machine_load
from hnas_edge.profiling.transfer import SIMPLER_WITHIN, choose, fine_group
from hnas_edge.space.mmnn import arch_parts, build_fresh, random_arch
from hnas_edge.space.presets import get_preset
from hnas_edge.torch_state import seeded

#: Networks a held-out fit needs: half fit three parameters (with one to spare), half test it.
MIN_SAMPLES = 8
#: Share of held-out networks within ±10% after calibration below which validate says so.
FIDELITY_TARGET = 0.9


@dataclass(frozen=True)
class NetworkMeasurement:
    """A network measured (``latency_ms`` corrected for drift, ``raw_latency_ms`` as timed)
    beside the LUT's sums for it (``latency_groups``: per fine group of parts)."""

    arch: dict[str, Any]
    n_parts: int
    latency_sum_ms: float
    latency_ms: float
    energy_sum_mj: float | None
    energy_mj: float | None
    latency_groups: dict[str, float] = field(default_factory=dict)
    raw_latency_ms: float | None = None
    at: float | None = None  # when it was timed (seconds since the epoch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "n_parts": self.n_parts,
            "latency_sum_ms": self.latency_sum_ms,
            "latency_ms": self.latency_ms,
            "raw_latency_ms": self.raw_latency_ms,
            "at": self.at,
            "energy_mj": self.energy_mj,
        }


@dataclass(frozen=True)
class MetricReport:
    """One metric (latency or energy): fidelity before and after calibration on held-out nets."""

    calibration: Calibration
    before: Fidelity
    after: Fidelity
    #: held-out mean |relative error| of each calibration fitted (``plain``, ``per_kind``)
    candidates: dict[str, float] = field(default_factory=dict)
    chosen: str = "plain"


@dataclass(frozen=True)
class ValidationReport:
    networks: tuple[NetworkMeasurement, ...]
    latency: MetricReport
    energy: MetricReport | None
    load: dict[str, Any] = field(default_factory=dict)  # the machine's, before and after
    batch: int = 1  # samples per call, the LUT's: every figure is per batch
    pinned_core: int | None = None
    drift: dict[str, Any] = field(default_factory=dict)  # the reference timings, the baseline

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
                "calibration_chosen": report.chosen,
                "held_out_error_by_calibration": report.candidates,
            }

        return {
            "n": len(self.networks),
            "batch": self.batch,
            "latency": metric(self.latency),
            "energy": metric(self.energy),
            "load": self.load,
            "pinned_core": self.pinned_core,
            "drift": self.drift,
            "networks": [n.to_dict() for n in self.networks],
        }


@dataclass(frozen=True)
class WholeNetwork:
    """One random network of a space measured end to end (energy None where it is not metered)."""

    arch: dict[str, Any]
    latency_ms: float
    energy_mj: float | None
    at: float | None = None  # when it was timed (seconds since the epoch), for drift correction


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
    from hnas_edge.space.mmnn import MultimodalArch

    arch = MultimodalArch.from_dict(arch_dict)
    preset = get_preset(arch.preset)
    runtime, device = bench.runtime, bench.device
    with seeded(seed):
        net = build_fresh(preset, arch).eval()
        example = net.example_inputs(batch)
    with tempfile.TemporaryDirectory(prefix="hnas-net-") as tmp:
        inputs = load_part(runtime, net, example, Path(tmp))
        try:
            start = time.time()
            timing = runtime.time(inputs, device.timing)
            at = (start + time.time()) / 2
            latency = float(timing.stats.median)
            energy_mj = None
            if not bench.energy.estimated:
                energy_mj = bench.energy.of_runtime(runtime, inputs, latency).get("total")
        finally:
            runtime.close()
    return WholeNetwork(arch=arch_dict, latency_ms=latency, energy_mj=energy_mj, at=at)


def measure_networks(
    bench: Bench,
    space: str,
    samples: int,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    batch: int = 1,
    drift: DriftSession | None = None,
) -> list[WholeNetwork]:
    """``samples`` random networks of ``space`` (:func:`sample_archs`), each timed end to end
    at ``batch`` (the LUT's: the batch its parts were measured at), the drift reference
    (``drift``) timed between them."""
    archs = sample_archs(space, samples, seed)
    networks = []
    for i, arch in enumerate(archs):
        if on_progress:
            on_progress(i, samples)
        if drift is not None:
            drift.tick()
        networks.append(time_network(bench, arch, seed + i, batch))
    if drift is not None:
        drift.finish()
    if on_progress:
        on_progress(samples, samples)
    return networks


def priced(lut: Lut, network: WholeNetwork, factor: float = 1.0) -> NetworkMeasurement:
    """A measured network (its latency times the drift correction ``factor``) beside the LUT's
    uncalibrated sums for it."""
    from hnas_edge.space.mmnn import MultimodalArch

    arch = MultimodalArch.from_dict(network.arch)
    parts = arch_parts(get_preset(arch.preset), arch)
    cost = predict(lut, parts)
    groups = group_sums([fine_group(spec) for _, spec in parts], [p.latency_ms for p in cost.parts])
    return NetworkMeasurement(
        arch=network.arch,
        n_parts=len(parts),
        latency_sum_ms=cost.latency_sum_ms,
        latency_ms=network.latency_ms * factor,
        energy_sum_mj=cost.energy_sum_mj,
        energy_mj=network.energy_mj,
        latency_groups=groups,
        raw_latency_ms=network.latency_ms,
        at=network.at,
    )


def fit_per_kind(
    rows: Sequence[dict[str, float]], n_parts: Sequence[int], measured: Sequence[float]
) -> Calibration:
    """The per-kind calibration: the transfer's model (one non-negative scale per group of parts
    + c·n_parts + b), its grouping (``kind`` or ``fine``) chosen by leave-one-out error."""
    model = choose(rows, n_parts, measured, CALIBRATION_GROUPINGS).model
    return Calibration(
        1.0, model.intercept, model.per_part, model.fitted_on, model.grouping, model.scales
    )


def _metric(
    sums: np.ndarray,
    n_parts: np.ndarray,
    measured: np.ndarray,
    groups: Sequence[dict[str, float]] | None = None,
) -> MetricReport:
    """Fit on every other network, score on the others. With ``groups`` (each network's sums per
    fine group), the per-kind model is fitted too and kept where its held-out mean error is
    lower than the plain one's by more than :data:`~hnas_edge.profiling.transfer.SIMPLER_WITHIN`
    (10%: with 25 held-out networks, a dozen scales beat three parameters by chance alone
    in 4 of 20 synthetic draws whose truth is plain, by a few percent)."""
    fit, held = slice(0, None, 2), slice(1, None, 2)
    fitted = {"plain": fit_calibration(sums[fit], n_parts[fit], measured[fit])}
    rows = list(groups) if groups is not None else [{"all": float(s)} for s in sums]
    if groups is not None:
        fitted["per_kind"] = fit_per_kind(rows[fit], list(n_parts[fit]), list(measured[fit]))
    held_rows, held_parts, held_measured = rows[held], n_parts[held], measured[held]
    predictions = {
        name: [cal.apply_groups(r, int(n)) for r, n in zip(held_rows, held_parts, strict=True)]
        for name, cal in fitted.items()
    }
    errors = {
        name: fidelity(p, held_measured).mean_abs_rel_error for name, p in predictions.items()
    }
    # the simpler model unless the other beats it clearly (the transfer's rule between groupings);
    # a plain slope a <= 0 (networks that do not grow with their sums) is no calibration at all
    valid = fitted["plain"].a > 0
    if not valid and "per_kind" not in fitted:
        raise HnasError(
            f"the networks measured do not follow the LUT's sums (calibration slope a = "
            f"{fitted['plain'].a:.3g}); nothing written: measure again on a quieter machine "
            "or with more --samples"
        )
    chosen = "plain"
    if not valid or errors.get("per_kind", np.inf) * SIMPLER_WITHIN < errors["plain"]:
        chosen = "per_kind"
    return MetricReport(
        calibration=fitted[chosen],
        before=fidelity(sums[held], held_measured),
        after=fidelity(predictions[chosen], held_measured),
        candidates=errors,
        chosen=chosen,
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
    drift = DriftSession.open(device, "validate")
    with pinned(device.pin_core) as core:
        try:
            measured = measure_networks(bench, space, samples, seed, on_progress, lut.batch, drift)
        finally:
            drift.close()
    report = calibrate(lut, bench, measured, drift.times, {"before": before}, core)
    lut.extra["validation"] = {"space": space, "seed": seed, **report.to_dict()}
    lut.save(lut_path)
    return report


def calibrate(
    lut: Lut,
    bench: Bench,
    measured: Sequence[WholeNetwork],
    times: Sequence[ReferenceTime],
    load: dict[str, Any],
    core: int | None,
) -> ValidationReport:
    """Fit the calibrations on whole networks measured on this device (corrected for drift
    with the reference ``times`` taken around them), keep the better one in ``lut`` and
    report; ``load`` holds the machine's load before measuring, the one after is added."""
    device = bench.device
    drift_info, factors = _drift_factors(lut, times, measured)
    networks = [priced(lut, n, f) for n, f in zip(measured, factors, strict=True)]
    n_parts = np.array([n.n_parts for n in networks])
    latency = _metric(
        np.array([n.latency_sum_ms for n in networks]),
        n_parts,
        np.array([n.latency_ms for n in networks]),
        [n.latency_groups for n in networks],
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
        lut.calibration["energy"] = latency.calibration.scaled(device.nominal_power_w)
    load = {**load, "after": machine_load()}
    return ValidationReport(
        tuple(networks), latency, energy_report, load, lut.batch, core, drift_info
    )


def _drift_factors(
    lut: Lut, times: Sequence[ReferenceTime], networks: Sequence[WholeNetwork]
) -> tuple[dict[str, Any], list[float]]:
    """Each network's drift correction (baseline / r(t)) and the record of it. The baseline is
    the LUT's (its profile's speed); a LUT profiled without the reference is compared at the
    median speed of this validation instead."""
    if not times or any(n.at is None for n in networks):
        return {}, [1.0] * len(networks)
    baseline = lut_baseline(lut.extra.get("drift"))
    source = "lut"
    if baseline is None:
        baseline, source = baseline_of(times), "validation"
    factors = [correction(baseline, times, float(n.at)) for n in networks]  # type: ignore[arg-type]
    info = {**drift_record(times, baseline), "baseline_from": source, "factors": factors}
    return info, factors


def validate_with_progress(
    lut_path: Path, device: DeviceProfile, space: str, samples: int, seed: int, console: Any
) -> ValidationReport:
    from hnas_edge.reporting import progress_bar

    with progress_bar(console, deferred=True) as bar:
        task = bar.add_task(f"measuring {space} networks", total=samples, detail="")
        return validate(
            lut_path, device, space, samples, seed, lambda done, _: bar.update(task, completed=done)
        )
