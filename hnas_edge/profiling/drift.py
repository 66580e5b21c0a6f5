"""The drift reference: one fixed network timed at intervals, so that a machine that runs slower
(or faster) while it measures is seen and corrected for.

Parts take microseconds; a shared machine's speed wanders by tens of percent over the minutes a
profile takes. Every figure measured is therefore divided by how slow the machine was around
that moment, read from a *reference network* timed every ``reference_every`` measurements
(device profile; 0 turns it off):

    r(t)       = the reference's median latency at time t, interpolated linearly between the
                 reference timings around t (the first or last one outside them)
    baseline   = the median of the reference timings of the profile that made the LUT
    corrected  = raw × baseline / r(t)

So a LUT's entries, the networks `hnas lut validate` measures and `hnas deploy --bench`'s figure
are all expressed at the machine's speed while the LUT was profiled. The raw figures are kept
beside the corrected ones (``entry["raw"]``, the validation's networks), and every reference
timing is stored (``drift.times`` in the LUT, ``validation.drift``).

The reference is a fixed tiny convolutional network defined here (:func:`reference_module`),
not an architecture of a space: it has the same meaning for every space and LUT, it needs no
preset to be rebuilt by `deploy`, and its weights are drawn from a fixed seed. It is timed like a
part, with the device profile's runtime and timing settings, loaded once in a runtime of its
own. Its name (:data:`REFERENCE`) is stored with its figures; a LUT that records another
reference is not compared with this one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnas_edge.backend import Closing, Runtime, Source, get_runtime, load
from hnas_edge.profiling.device import DeviceProfile

#: Name and version of the reference network; change it whenever :func:`reference_module` does.
REFERENCE = "tiny-conv-28/2"


def reference_module() -> Any:
    """The reference network: three 3×3 convolutions and a linear classifier on a 1×28×28 input
    (4.6 MMAC, ~0.1 ms on one core of a laptop CPU: the size of a small whole network of the
    AV-MNIST space), weights from seed 0."""
    import torch
    from torch import nn

    from hnas_edge.torch_state import seeded

    with seeded(0):  # the caller's random stream is left alone
        net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        ).eval()
        example = {"input0": torch.randn(1, 1, 28, 28)}
    return net, example


@dataclass(frozen=True)
class ReferenceTime:
    """One timing of the reference: when (seconds since the epoch), its median latency, and
    the phase that timed it (``profile``, ``validate``, ``deploy``)."""

    at: float
    latency_ms: float
    phase: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "latency_ms": self.latency_ms, "phase": self.phase}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceTime:
        return cls(float(data["at"]), float(data["latency_ms"]), str(data.get("phase", "")))


def reference_at(times: Sequence[ReferenceTime], at: float) -> float:
    """r(t): the reference latency at ``at``, linear between the timings around it, the nearest
    one outside them."""
    if not times:
        raise ValueError("no reference timing")
    ordered = sorted(times, key=lambda r: r.at)
    if at <= ordered[0].at:
        return ordered[0].latency_ms
    for before, after in zip(ordered, ordered[1:], strict=False):
        if at <= after.at:
            span = after.at - before.at
            w = (at - before.at) / span if span > 0 else 1.0
            return before.latency_ms + w * (after.latency_ms - before.latency_ms)
    return ordered[-1].latency_ms


def baseline_of(times: Sequence[ReferenceTime]) -> float:
    """The speed a LUT's figures are expressed at: the median reference latency of its profile."""
    return float(statistics.median(r.latency_ms for r in times))


def correction(baseline_ms: float, times: Sequence[ReferenceTime], at: float) -> float:
    """The factor a figure measured at ``at`` is multiplied by: baseline / r(at)."""
    return baseline_ms / reference_at(times, at)


def scale_stats(stats: dict[str, Any], factor: float) -> dict[str, Any]:
    """Latency statistics times ``factor`` (counts and relative spreads unchanged)."""
    unitless = {"n", "cv", "robust_cv"}
    return {k: (v if k in unitless or v is None else v * factor) for k, v in stats.items()}


class DriftReference(Closing):
    """Times the reference network with the device profile's runtime and timing settings, in a
    runtime of its own that stays loaded until :meth:`close` (or the end of a ``with`` block);
    ``clock`` gives seconds since the epoch."""

    def __init__(
        self,
        device: DeviceProfile,
        phase: str,
        runtime: Runtime | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.device, self.phase = device, phase
        self.clock = clock or time.time
        self.runtime = runtime or get_runtime(device.runtime, **device.runtime_options())
        self.times: list[ReferenceTime] = []
        self._inputs: dict[str, Any] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _load(self) -> dict[str, Any]:
        net, example = reference_module()
        self._tmp = tempfile.TemporaryDirectory(prefix="hnas-reference-")
        return load(self.runtime, Source.MODULE, net, example, Path(self._tmp.name))

    def time(self) -> ReferenceTime:
        """Time the reference now; the timing is kept in :attr:`times` and returned."""
        if self._inputs is None:
            self._inputs = self._load()
        at = self.clock()
        latency = float(self.runtime.time(self._inputs, self.device.timing).stats.median)
        reading = ReferenceTime((at + self.clock()) / 2, latency, self.phase)
        self.times.append(reading)
        return reading

    def close(self) -> None:
        self.runtime.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._inputs = None


def drift_record(times: Sequence[ReferenceTime], baseline_ms: float | None) -> dict[str, Any]:
    """What the LUT stores: the reference's name, the baseline and every timing."""
    return {
        "reference": REFERENCE,
        "baseline_ms": baseline_ms,
        "times": [r.to_dict() for r in times],
    }


def lut_baseline(drift: Any) -> float | None:
    """A LUT's baseline reference latency (its ``drift`` record), None where it has none or
    records another reference network."""
    if not isinstance(drift, dict) or drift.get("reference") != REFERENCE:
        return None
    baseline = drift.get("baseline_ms")
    return float(baseline) if isinstance(baseline, int | float) and baseline > 0 else None


def correct_entries(
    entries: dict[str, dict[str, Any]], times: Sequence[ReferenceTime], baseline_ms: float
) -> None:
    """Re-express every entry that records its raw figures and when it was measured (``raw``,
    ``drift.at``) at the baseline speed: latency statistics, and an energy that is an estimate
    (nominal power × latency), times baseline / r(at). Metered energy stays as measured."""
    for entry in entries.values():
        raw, drift = entry.get("raw"), entry.get("drift")
        if not isinstance(raw, dict) or not isinstance(drift, dict) or "at" not in drift:
            continue
        factor = correction(baseline_ms, times, float(drift["at"]))
        entry["latency_ms"] = scale_stats(raw["latency_ms"], factor)
        energy = raw.get("energy_mj")
        if isinstance(energy, dict) and energy.get("estimate"):
            scaled = {k: energy[k] * factor for k in ("total", "dynamic") if energy.get(k)}
            entry["energy_mj"] = {**energy, **scaled}
        drift["factor"] = factor


class DriftSession(Closing):
    """The drift reference around one run of measurements (a profile, a validation), its
    runtime released by :meth:`close` (or the end of a ``with`` block).

    :meth:`tick` before each measurement times the reference when ``every`` measurements have
    passed since the last timing (and before the first); :meth:`finish` times it once more, so
    every measurement lies between two timings. ``reference`` None (``reference_every = 0``)
    does nothing."""

    def __init__(self, reference: DriftReference | None, every: int) -> None:
        self.reference, self.every = reference, every
        self._since: int | None = None

    @property
    def times(self) -> list[ReferenceTime]:
        return self.reference.times if self.reference else []

    def tick(self) -> None:
        if self.reference is None:
            return
        if self._since is None or self._since >= self.every:
            self.reference.time()
            self._since = 0
        self._since += 1

    def finish(self) -> None:
        if self.reference is not None and self._since:
            self.reference.time()
            self._since = 0

    def close(self) -> None:
        if self.reference is not None:
            self.reference.close()

    @classmethod
    def open(cls, device: DeviceProfile, phase: str) -> DriftSession:
        every = device.reference_every
        return cls(DriftReference(device, phase) if every > 0 else None, every)
