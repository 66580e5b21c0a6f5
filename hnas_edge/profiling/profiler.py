"""`hnas profile`: measure every part a space can need on one device and write the LUT.

The loop is: enumerate the space's specs (:meth:`SpacePreset.all_specs`), keep those of this
shard that the LUT does not hold yet, and for each one build its module, export it to ONNX, time it
with the device profile's runtime, measure its energy with the profile's meter, and write the LUT
atomically. A kill at any moment loses at most the entry being measured; ``--resume`` goes on.

Every part is measured at the request's batch size (``--batch``, default 1): its inputs carry that
many samples, and the LUT records it (``settings.batch``); figures are per call, i.e. per batch.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.checks import differences
from hnas_edge.errors import ConfigError, HnasError
from hnas_edge.io import provenance
from hnas_edge.outputs import lut_output
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import (
    DriftSession,
    ReferenceTime,
    baseline_of,
    correct_entries,
    drift_record,
)
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.lut import Lut, target
from hnas_edge.profiling.pinning import pinned
from hnas_edge.profiling.runtimes import Runtime, get_runtime
from hnas_edge.profiling.state import device_state, load_warnings, machine_load
from hnas_edge.space.presets import get_preset
from hnas_edge.space.specs import LayerSpec
from hnas_edge.torch_state import seeded


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``: every count-th key of the sorted key list."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(p) for p in text.split("/"))
        except ValueError:
            raise HnasError(f"--shard {text!r} is not I/N; write e.g. --shard 1/2") from None
        if not 1 <= index <= count:
            raise HnasError(f"--shard {text}: I must be between 1 and N; write e.g. --shard 1/2")
        return cls(index, count)

    def select(self, specs: Sequence[LayerSpec]) -> list[LayerSpec]:
        ordered = sorted(specs, key=lambda s: s.key)
        return ordered[self.index - 1 :: self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


SHARD_HINT = (
    "or profile another board into another --out and join the LUTs with `hnas lut merge` "
    "(two profiles on one board skew each other's timings)"
)


@dataclass(frozen=True)
class ProfileRequest:
    device: DeviceProfile
    space: str
    out: Path
    resume: bool = False
    shard: Shard = Shard()
    limit: int | None = None
    seed: int = 0
    force: bool = False  # replace an existing ``out`` (start over) instead of refusing it
    batch: int = 1
    #: whole networks measured in one shuffled queue with the parts, then calibrated (0: none)
    validate: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"--batch {self.batch!r}: give a whole number of samples, 1 or more")

    def writing(self) -> AbstractContextManager[Path]:
        """Claim ``out`` (--resume continues it, --force replaces it) and hold its writers'
        lock while the block runs (:func:`~hnas_edge.outputs.lut_output`)."""
        return lut_output(self.out, force=self.force, resume=self.resume, hint=SHARD_HINT)


def batched_shapes(spec: LayerSpec, batch: int = 1) -> list[tuple[int, ...]]:
    """The spec's input shapes with ``batch`` samples in place of the first (batch-1) size."""
    return [(batch, *shape[1:]) for shape in spec.input_shapes()]


def random_inputs(spec: LayerSpec, seed: int, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for shape in batched_shapes(spec, batch)]


def load_part(
    runtime: Runtime, module: Any, example: dict[str, Any], workdir: Path
) -> dict[str, np.ndarray]:
    """Hand a module to the runtime (as ONNX unless it times modules); return its numpy inputs
    (for ONNX, those the exported graph kept: an unused input is dropped by the exporter)."""
    if runtime.accepts_modules:
        runtime.load_module(module, example)  # type: ignore[attr-defined]
        return {name: tensor.numpy() for name, tensor in example.items()}
    import onnx

    from hnas_edge.export.onnx import export_onnx

    path = export_onnx(module, example, workdir / "model.onnx")
    runtime.load(path)
    kept = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    return {name: tensor.numpy() for name, tensor in example.items() if name in kept}


def measure_part(
    spec: LayerSpec,
    runtime: Runtime,
    energy: EnergyMeasurer,
    device: DeviceProfile,
    seed: int,
    batch: int = 1,
) -> dict[str, Any]:
    """One LUT entry: latency statistics and energy of ``spec`` on this device, per call of
    ``batch`` samples."""
    import torch

    arrays = random_inputs(spec, seed, batch)
    example = {f"input{i}": torch.from_numpy(a) for i, a in enumerate(arrays)}
    with seeded(seed):
        module = spec.build()
    with tempfile.TemporaryDirectory(prefix="hnas-part-") as tmp:
        inputs = load_part(runtime, module, example, Path(tmp))
        try:
            timing = runtime.time(inputs, device.timing)
            energy_mj = energy.of_runtime(runtime, inputs, timing.stats.median)
        finally:
            runtime.close()
    return {
        "spec": spec.to_dict(),
        "latency_ms": timing.stats.to_dict(),
        "energy_mj": energy_mj,
        "attempts": timing.attempts,
        "origin": {"kind": "measured"},
    }


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
class Bench:
    """The runtime and energy meter one machine measures with, built from the device profile."""

    device: DeviceProfile
    runtime: Runtime
    energy: EnergyMeasurer

    @classmethod
    def open(cls, device: DeviceProfile) -> Bench:
        runtime = get_runtime(device.runtime, **device.runtime_options())
        return cls(device, runtime, EnergyMeasurer.for_device(device))

    def measure(self, spec: LayerSpec, seed: int, batch: int = 1) -> dict[str, Any]:
        return measure_part(spec, self.runtime, self.energy, self.device, seed, batch)

    def host_info(self) -> HostInfo:
        """This machine's description (measures idle power on first use, before any part)."""
        return HostInfo(
            meter=self.energy.source,
            runtime_info=self.runtime.describe(),
            state=device_state(self.device),
            idle_power_w=self.energy.idle_w,
        )


def device_header(device: DeviceProfile, host: HostInfo | None) -> dict[str, Any]:
    target = {"name": device.name, "runtime": device.runtime, "precision": device.precision}
    if host is None:
        return {**target, "profile": device.to_dict()}
    return {
        **target,
        "meter": host.meter,
        "runtime_info": host.runtime_info,
        "profile": device.to_dict(),
        "state": host.state,
    }


def new_lut(request: ProfileRequest, host: HostInfo | None) -> Lut:
    """An empty LUT for ``request``. ``host`` describes the one machine that measures; None when
    several do (a fleet records each node's description beside its entries instead)."""
    device = request.device
    settings = {
        "batch": request.batch,
        "space": request.space,
        "seed": request.seed,
        **device.timing_dict(),
    }
    if host is not None:
        settings["idle_power_w"] = host.idle_power_w
    return Lut(
        device=device_header(device, host),
        settings=settings,
        provenance=provenance({"shard": str(request.shard), "limit": request.limit}),
        extra={"shard": str(request.shard)},
    )


def open_lut(request: ProfileRequest, new: Callable[[], Lut]) -> Lut:
    """The LUT at ``request.out`` when resuming (same device and batch only), else ``new()``.
    Called under the LUT's writers' lock (:meth:`ProfileRequest.writing`), so what it reads stays
    on disk."""
    out = request.out
    if out.exists() and request.resume:
        lut = Lut.load(out)
        if lut.batch != request.batch:
            raise HnasError(
                f"{out} was profiled at batch {lut.batch}, not --batch {request.batch}; resume "
                f"it with --batch {lut.batch} or write to another --out"
            )
        expected = (request.device.name, request.device.runtime, request.device.precision)
        if target(lut) != expected:
            raise HnasError(
                f"{out} was profiled for {target(lut)}, not {expected}; "
                "resume it with the same --device or write to another --out"
            )
        # entries measured with other threads, timing or power must not join the old header
        recorded = DeviceProfile.with_defaults(lut.device.get("profile") or {})
        changed = differences(recorded, request.device.to_dict())
        if changed:
            raise HnasError(
                f"{out} was profiled with other device settings ({'; '.join(changed)}); "
                "resume it with the device file it was made with or write to another --out"
            )
        return lut
    return new()


def pending_specs(request: ProfileRequest, lut: Lut | None = None) -> list[LayerSpec]:
    """The specs this run still has to measure, in a stable order."""
    specs = request.shard.select(get_preset(request.space).all_specs())
    todo = [s for s in specs if lut is None or s.key not in lut]
    return todo[: request.limit] if request.limit is not None else todo


OnProgress = Callable[[int, int, LayerSpec], None]


def profile(request: ProfileRequest, on_progress: OnProgress | None = None) -> Lut:
    """Measure every pending spec and checkpoint the LUT after each one, holding the LUT's
    writers' lock throughout (a second profile of the same ``out`` is refused); the machine's
    load before and after is recorded in the LUT (``load``). With ``request.validate`` N,
    N whole networks are measured in the same shuffled queue and calibrate the LUT."""
    archs = validation_archs(request)
    with request.writing():
        bench = Bench.open(request.device)
        lut = open_lut(request, lambda: new_lut(request, bench.host_info()))
        lut.extra["load"] = {"before": machine_load()}
        todo = pending_specs(request, lut)
        lut.save(request.out)
        queue: list[LayerSpec | dict[str, Any]] = [*todo, *archs]
        if archs:  # one shuffled queue: a slow spell hits parts and networks alike
            random.Random(request.seed).shuffle(queue)
        # a LUT resumed from before the drift reference existed keeps its entries uncorrected
        use_drift = bool(queue) and ("drift" in lut.extra or not lut.entries)
        drift = DriftSession.open(request.device, "profile") if use_drift else DriftSession(None, 0)
        networks, measured = [], []
        with pinned(request.device.pin_core) as core:
            lut.extra["pinned_core"] = core
            try:
                for done, item in enumerate(_with_progress(queue, on_progress)):
                    drift.tick()
                    seed = request.seed + done
                    if isinstance(item, dict):
                        networks.append(_time_network(bench, item, seed, request.batch))
                        continue
                    lut.entries[item.key] = measured_entry(bench, item, seed, request.batch)
                    measured.append(item.key)
                    _correct(lut, drift, measured)
                    lut.save(request.out)
                drift.finish()
            finally:
                drift.close()
        _correct(lut, drift, measured)
        lut.extra["load"]["after"] = machine_load()
        if networks:
            _calibrate(request, lut, bench, networks, drift, core)
        lut.save(request.out)
    return lut


def validation_archs(request: ProfileRequest) -> list[dict[str, Any]]:
    """The networks ``--validate N`` measures: those `hnas lut validate --samples N` would."""
    if not request.validate:
        return []
    from hnas_edge.profiling.validate import MIN_SAMPLES, sample_archs

    if request.shard.count > 1 or request.limit is not None:
        raise HnasError(
            "--validate needs every part of the space in this LUT; drop --shard and --limit, "
            "or run `hnas lut validate` once the LUT is complete"
        )
    if request.validate < MIN_SAMPLES:
        raise HnasError(
            f"--validate {request.validate} is too few for a held-out fit: give at least "
            f"{MIN_SAMPLES} networks, or 0 to profile only"
        )
    return sample_archs(request.space, request.validate, request.seed)


def _time_network(bench: Bench, arch: dict[str, Any], seed: int, batch: int) -> Any:
    from hnas_edge.profiling.validate import time_network

    return time_network(bench, arch, seed, batch)


def _calibrate(
    request: ProfileRequest,
    lut: Lut,
    bench: Bench,
    networks: list[Any],
    drift: DriftSession,
    core: int | None,
) -> None:
    """``--validate``: the networks measured among the parts calibrate the LUT, as `hnas lut
    validate` would (the report is stored in ``validation``, ``interleaved`` true)."""
    from hnas_edge.profiling.validate import calibrate

    load = {"before": lut.extra["load"]["before"]}
    report = calibrate(lut, bench, networks, drift.times, load, core)
    lut.extra["validation"] = {
        "space": request.space,
        "seed": request.seed,
        "interleaved": True,
        **report.to_dict(),
    }


def measured_entry(bench: Bench, spec: LayerSpec, seed: int, batch: int = 1) -> dict[str, Any]:
    """One part measured, its raw figures kept and the moment it was measured recorded, for the
    drift correction (:func:`hnas_edge.profiling.drift.correct_entries`)."""
    start = time.time()
    entry = bench.measure(spec, seed, batch)
    entry["raw"] = {"latency_ms": entry["latency_ms"], "energy_mj": entry.get("energy_mj")}
    entry["drift"] = {"at": (start + time.time()) / 2, "factor": 1.0}
    return entry


def _correct(lut: Lut, drift: DriftSession, keys: Sequence[str]) -> None:
    """Add this run's reference timings to the LUT's and correct the entries it measured
    (``keys``) for them. The baseline is the median of the first run's timings: a resume
    corrects what it measures to the speed the LUT already holds, and leaves what an earlier
    run measured as it was written."""
    if not drift.times:
        return
    record = lut.extra.get("drift") or drift_record([], None)
    earlier = [ReferenceTime.from_dict(t) for t in record["times"]]
    earlier = [t for t in earlier if t not in drift.times]
    baseline = record.get("baseline_ms") if earlier else None
    baseline = baseline or baseline_of(drift.times)
    correct_entries({key: lut.entries[key] for key in keys}, drift.times, baseline)
    lut.extra["drift"] = {
        **drift_record(earlier + drift.times, baseline),
        "every": drift.every,
        "formula": "corrected = raw × baseline_ms / r(t), r linear between reference timings",
    }


def _with_progress(specs: Sequence[Any], on_progress: OnProgress | None) -> Iterator[Any]:
    for i, spec in enumerate(specs):
        if on_progress:
            on_progress(i, len(specs), spec)
        yield spec


def profile_with_progress(
    request: ProfileRequest,
    console: Any,
    run: Callable[[ProfileRequest, OnProgress], Lut] = profile,
) -> Lut:
    """``run`` (:func:`profile` or a fleet's) with a rich progress bar (entries done, ETA, the
    part being measured)."""
    from hnas_edge.reporting import progress_bar

    with progress_bar(console, "part", deferred=True) as bar:
        task = bar.add_task(f"profiling {request.space}", total=None, part="")

        def advance(done: int, total: int, spec: LayerSpec | dict[str, Any]) -> None:
            what = "whole network (--validate)" if isinstance(spec, dict) else spec.key[:60]
            bar.update(task, completed=done, total=total, part=what)

        lut = run(request, advance)
        bar.update(task, completed=bar.tasks[0].total or 0, part="done")
    for line in load_warnings(lut.extra.get("load")):
        console.print(line, markup=False, highlight=False)
    return lut
