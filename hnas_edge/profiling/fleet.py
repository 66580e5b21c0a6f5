"""`hnas profile --ray-address`: one device model profiled by a fleet of boards over Ray.

Every board of the fleet joins a Ray cluster offering the custom resource ``device:NAME`` (NAME:
the device profile's name), one unit per board. The driver (this process) submits one Ray task per
pending key, each asking for one unit, so a board measures one part at a time: measurements never
overlap on one device. A task builds the runtime and energy meter from the device profile on the
board it lands on (once per worker process) and returns the entry with where it ran; the driver
never builds a runtime (it may lack TensorRT entirely). The driver alone writes the LUT, atomically
after every entry, so a killed driver loses nothing measured and ``--resume`` measures only what is
missing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hnas_edge.cluster import connect, import_ray
from hnas_edge.errors import HnasError
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.measure import Bench, HostInfo
from hnas_edge.profiling.profiler import (
    OnProgress,
    ProfileRequest,
    Shard,
    new_lut,
    open_lut,
    pending_specs,
)
from hnas_edge.space.specs import LayerSpec

PURPOSE = "--ray-address"


@dataclass(frozen=True)
class FleetSettings:
    """Where the fleet is and what each measuring task asks for.

    One CPU per task: every Jetson offers several, the ``device:NAME`` slot (not the CPUs)
    is what keeps measurements on one board from overlapping, and a board started with
    ``--num-cpus 1`` thereby keeps other Ray work off itself while it measures.
    ``max_retries`` covers a task whose worker process or node dies; an exception raised by the
    measurement itself is not retried (it is reported, and ``--resume`` tries again).
    """

    address: str
    task_cpus: float = 1.0
    max_retries: int = 2


@dataclass(frozen=True)
class PartResult:
    """What a task sends back: the entry, the node it ran on and that node's description."""

    key: str
    entry: dict[str, Any]
    node: dict[str, Any]
    host: HostInfo


# --- on the board ---------------------------------------------------------------------------

_BENCHES: dict[DeviceProfile, tuple[Bench, HostInfo]] = {}


def _bench(device: DeviceProfile) -> tuple[Bench, HostInfo]:
    """This worker process's runtime and meter, built on first use and kept; the host is
    described right away, so idle power is measured at rest, before any part."""
    if device not in _BENCHES:
        bench = Bench.open(device)
        _BENCHES[device] = (bench, bench.host_info())
    return _BENCHES[device]


def _this_node() -> dict[str, Any]:
    import ray

    return {
        "id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "ip": ray.util.get_node_ip_address(),
    }


def measure_on_node(
    device: DeviceProfile, spec: LayerSpec, seed: int, batch: int = 1
) -> PartResult:
    """The Ray task: measure ``spec`` at ``batch`` on the board this runs on."""
    bench, host = _bench(device)
    return PartResult(spec.key, bench.measure_part(spec, seed, batch), _this_node(), host)


# --- on the driver --------------------------------------------------------------------------


def slot_resource(device: DeviceProfile) -> str:
    return f"device:{device.name}"


def require_slot(ray: Any, device: DeviceProfile, settings: FleetSettings) -> None:
    """Fail in one line, before submitting anything, where no live node could run a task (it
    would wait forever)."""
    resource = slot_resource(device)
    offering = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get(resource, 0) >= 1]
    if not offering:
        raise HnasError(
            f"no node of the Ray cluster at {settings.address} offers {resource}; start each "
            f"board with `ray start --address {settings.address} --resources "
            f"'{{\"{resource}\": 1}}'` (docs/jetson.md, 'Profiling a fleet of boards with Ray')"
        )
    if not any(n["Resources"].get("CPU", 0) >= settings.task_cpus for n in offering):
        raise HnasError(
            f"the nodes offering {resource} offer fewer than {settings.task_cpus:g} CPU; "
            f"start them with --num-cpus {max(1, int(settings.task_cpus))} or more"
        )


def refuse_shard(request: ProfileRequest) -> None:
    if request.shard != Shard():
        raise HnasError(
            f"--shard {request.shard} with --ray-address: the fleet already spreads the keys "
            "over its boards; drop --shard"
        )


def _submit(
    ray: Any, request: ProfileRequest, todo: Sequence[LayerSpec], settings: FleetSettings
) -> dict[Any, LayerSpec]:
    task = ray.remote(
        num_cpus=settings.task_cpus,
        resources={slot_resource(request.device): 1},
        max_retries=settings.max_retries,
    )(measure_on_node)
    return {
        task.remote(request.device, spec, request.seed + i, request.batch): spec
        for i, spec in enumerate(todo)
    }


def _finished(ray: Any, refs: dict[Any, LayerSpec]) -> Iterator[tuple[LayerSpec, Any]]:
    """(spec, PartResult or the exception) for each task as it finishes, removed from ``refs``
    (what is left there is outstanding)."""
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        spec = refs.pop(ready[0])
        try:
            yield spec, ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            yield spec, exc


def _cancel(ray: Any, refs: dict[Any, LayerSpec]) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):  # finished meanwhile or gone: nothing to cancel
            ray.cancel(ref, force=True)


def record(lut: Lut, result: PartResult) -> None:
    """Store the entry with the node that measured it, and the node's description once."""
    origin = {**result.entry["origin"], "node": result.node}
    lut.entries[result.key] = {**result.entry, "origin": origin}
    nodes = lut.device.setdefault("nodes", {})
    if result.node["id"] not in nodes:
        nodes[result.node["id"]] = {"hostname": result.node["hostname"], **result.host.to_dict()}


def _reason(exc: Exception) -> str:
    """One line for a failed task: the measurement's own exception where there is one."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0][:160]}" if text else type(cause).__name__


def _failure(request: ProfileRequest, failed: dict[str, str], measured: int) -> HnasError:
    shown = "; ".join(f"{key} ({why})" for key, why in list(failed.items())[:3])
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    return HnasError(
        f"{len(failed)} part(s) failed on the fleet: {shown}{more}; {request.out} keeps the "
        f"{measured} entries measured; rerun with --resume to measure the rest"
    )


def _measure(
    ray: Any,
    lut: Lut,
    request: ProfileRequest,
    settings: FleetSettings,
    on_progress: OnProgress | None,
) -> dict[str, str]:
    """Measure the pending specs on the fleet, saving ``lut`` after each entry; returns the
    keys whose task failed, with why. Leaving early (Ctrl-C) cancels what is outstanding."""
    todo = pending_specs(request, lut)
    lut.save(request.out)
    if todo and on_progress:
        on_progress(0, len(todo), todo[0])
    failed: dict[str, str] = {}
    refs = _submit(ray, request, todo, settings)
    try:
        for done, (spec, result) in enumerate(_finished(ray, refs), start=1):
            if isinstance(result, PartResult):
                record(lut, result)
                lut.save(request.out)
            else:
                failed[spec.key] = _reason(result)
            if on_progress:
                on_progress(done, len(todo), spec)
    finally:
        _cancel(ray, refs)
    return failed


def profile_fleet(
    request: ProfileRequest, settings: FleetSettings, on_progress: OnProgress | None = None
) -> Lut:
    """Measure every pending spec of ``request`` on the fleet at ``settings.address``."""
    refuse_shard(request)
    with request.writing():  # the driver alone writes, under the LUT's lock
        lut = open_lut(request, lambda: new_lut(request, host=None))
        ray = import_ray(PURPOSE)
        started = connect(settings.address, purpose=PURPOSE)
        try:
            require_slot(ray, request.device, settings)
            failed = _measure(ray, lut, request, settings, on_progress)
        finally:
            if started:
                ray.shutdown()
    if failed:
        raise _failure(request, failed, len(lut))
    return lut
