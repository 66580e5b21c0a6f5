"""The measuring commands with a progress bar: `hnas profile` (here or on a fleet), `hnas lut
validate` and `hnas lut transfer`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.fleet import FleetSettings, profile_fleet
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.lut_transfer import TransferReport, TransferRequest, transfer
from hnas_edge.profiling.profiler import OnProgress, ProfileRequest, profile
from hnas_edge.profiling.state import load_warnings
from hnas_edge.profiling.validate import ValidationReport, validate
from hnas_edge.space.specs import LayerSpec
from hnas_edge.ui.progress import progress_line


def profile_with_progress(
    request: ProfileRequest,
    console: Console,
    run: Callable[[ProfileRequest, OnProgress], Lut] = profile,
) -> Lut:
    """``run`` (:func:`~hnas_edge.profiling.profiler.profile` or a fleet's) with a progress bar
    (entries done, ETA, the part being measured), then the machine's load if it was busy."""
    with progress_line(console, f"profiling {request.space}", None, "part", True) as line:

        def advance(done: int, total: int, spec: LayerSpec | dict[str, Any]) -> None:
            what = "whole network (--validate)" if isinstance(spec, dict) else spec.key[:60]
            line(done, total, what)

        lut = run(request, advance)
        line.finish("done")
    for text in load_warnings(lut.extra.get("load")):
        console.print(text, markup=False, highlight=False)
    return lut


def profile_fleet_with_progress(
    request: ProfileRequest, settings: FleetSettings, console: Console
) -> Lut:
    """:func:`~hnas_edge.profiling.fleet.profile_fleet` with the bar of the single-process
    profiler."""
    return profile_with_progress(
        request, console, lambda request, advance: profile_fleet(request, settings, advance)
    )


def validate_with_progress(
    lut_path: Path, device: DeviceProfile, space: str, samples: int, seed: int, console: Console
) -> ValidationReport:
    """:func:`~hnas_edge.profiling.validate.validate` with a bar of the networks measured."""
    with progress_line(console, f"measuring {space} networks", samples, deferred=True) as line:
        return validate(lut_path, device, space, samples, seed, lambda done, _: line(done))


def transfer_with_progress(request: TransferRequest, console: Console) -> TransferReport:
    """:func:`~hnas_edge.profiling.lut_transfer.transfer` with a bar of the networks measured
    (deferred: a refused request prints its one line with no bar above it)."""
    what = f"measuring {request.space} networks"
    with progress_line(console, what, request.samples, deferred=True) as line:
        return transfer(request, lambda done, _: line(done))
