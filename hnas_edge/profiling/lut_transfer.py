"""`hnas lut transfer`: a LUT for a new target from another device's LUT and a few networks.

N random whole networks of the space are measured on the target, with the sampler and the
end-to-end measurement of `hnas lut validate` (:func:`hnas_edge.profiling.validate.
measure_networks`). They fit the mapping of :mod:`hnas_edge.profiling.transfer` from the source's
part costs to the target, the grouping chosen by leave-one-out error. The fidelity recorded is
cross-validated (:func:`hnas_edge.profiling.transfer.cross_validate`): each network is predicted
by a model chosen and fitted without it. Measured on a 2-core machine, a model fitted on all N
networks was clearly better than one fitted on N/2 (avmnist, N = 20: mean error 12.8% against
16.6% on 30 other networks), so all N fit the LUT's model and none is spent on a hold-out.

The LUT written prices every part of the space: an entry is the source's figure times the scale
of its group (a part the source lacks: its MACs times the scale per MMAC), and the calibration
holds the fitted per-part overhead and intercept (``a = 1``), so that :func:`hnas_edge.profiling.
cost.predict` — and with it `lut predict` and the search — gives the fitted model's figure for
any network. Entries are marked ``origin.kind == "transferred"``; the header's ``transfer``
records the source's identity, the fitted models, the candidates' errors and the held-out report.

Parts the source lacks: an imported Harmonic-NAS table prices no feature adapter and no shared
head (the paper counts backbones whole, with their own classifiers). Networks as we run them need
them, so those parts are priced by their MACs, with one non-negative scale fitted on the target
like the others; the LUT lists them (``transfer.unpriced``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hnas_edge.errors import HnasError
from hnas_edge.io import file_digest, provenance
from hnas_edge.outputs import claim_output, lut_output
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.fidelity import Fidelity, fidelity
from hnas_edge.profiling.lut import Calibration, Lut
from hnas_edge.profiling.measure import Bench, HostInfo, WholeNetwork
from hnas_edge.profiling.profiler import device_header
from hnas_edge.profiling.transfer import (
    FOLDS,
    MACS,
    UNPRICED,
    Selection,
    choose,
    cross_validate,
    fine_group,
    in_mmac,
    macs_column,
)
from hnas_edge.profiling.validate import measure_networks
from hnas_edge.space.mmnn import MultimodalArch, arch_parts
from hnas_edge.space.presets import SpacePreset, get_preset
from hnas_edge.space.specs import LayerSpec

BACKBONE_KINDS = ("conv", "mbconv", "maxout")
#: Below this held-out rank correlation of its raw sums, a source is reported as a weak one.
WEAK_SPEARMAN = 0.5


@dataclass(frozen=True)
class TransferRequest:
    source: Path
    device: DeviceProfile
    space: str
    samples: int
    out: Path
    seed: int = 0
    force: bool = False


@dataclass(frozen=True)
class MetricTransfer:
    """One metric: the model chosen, from which source figures, and its held-out fidelity."""

    basis: str  # the source's figures the model maps: "latency" or "energy"
    selection: Selection
    held_out: Fidelity  # cross-validated: each network predicted by a model fitted without it
    held_out_source: Fidelity  # the source's raw sums against the target: rank agreement

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "model": self.selection.model.to_dict(),
            "candidates_loo_error": self.selection.loo_error,
            "held_out": self.held_out.to_dict(),
            "source_sums": self.held_out_source.to_dict(),
        }


@dataclass(frozen=True)
class TransferReport:
    source: dict[str, Any]
    space: str
    networks: tuple[WholeNetwork, ...]
    latency: MetricTransfer
    energy: MetricTransfer | None  # None: the target does not meter energy (estimate)
    unpriced: dict[str, int]  # kind → keys of the space the source lacks
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """What a user should know before trusting the LUT: a source that says little here."""
        selection = self.latency.selection
        model = selection.model
        if model.grouping == MACS:
            errors = selection.loo_error
            best = min((g for g in errors if g != MACS), key=errors.get)
            return [
                f"the parts' MACs predicted this device better than the source's costs (leave-"
                f"one-out error {errors[MACS]:.1%} against {errors[best]:.1%} for {best}): the "
                "LUT prices every part from its MACs, fitted on the networks measured here, and "
                "does not use the source; profile this device for a LUT of its own"
            ]
        priced = [v for g, v in model.scales.items() if g != UNPRICED]
        rho = self.latency.held_out_source.spearman
        if priced and not any(priced):
            return [
                "every scale of the source's costs fitted to 0: the LUT prices networks from "
                "their part counts (and MACs) alone, not from the source; profile this device"
            ]
        if rho < WEAK_SPEARMAN:  # False for NaN (too few held out to rank)
            return [
                f"the source's costs rank the held-out networks poorly on this device (Spearman "
                f"{rho:.2f}); a transfer is no better than its source: profile this device"
            ]
        return []

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "space": self.space,
            "samples": len(self.networks),
            "held_out_protocol": (
                f"{min(FOLDS, len(self.networks))}-fold cross-validation: each network predicted "
                "by a model chosen and fitted without it; the LUT's model is fitted on all"
            ),
            "seconds": self.seconds,
            "unpriced": self.unpriced,
            "warnings": self.warnings(),
            "latency": self.latency.to_dict(),
            "energy": None if self.energy is None else self.energy.to_dict(),
            "networks": [
                {"arch": n.arch, "latency_ms": n.latency_ms, "energy_mj": n.energy_mj}
                for n in self.networks
            ],
        }


def source_identity(lut: Lut, path: Path) -> dict[str, Any]:
    """What identifies the source LUT: its target, file hash, origin and creation."""
    if (lut.extra.get("imported") or {}).get("from"):
        origin = f"imported ({lut.extra['imported']['from']})"
    else:
        origin = "transferred" if "transfer" in lut.extra else "measured"
    return {
        "path": str(path),
        "sha256": file_digest([path]),
        "device": lut.device.get("name"),
        "runtime": lut.device.get("runtime"),
        "precision": lut.device.get("precision"),
        "description": lut.device.get("description"),
        "threads": (lut.device.get("profile") or {}).get("threads"),
        "origin": origin,
        "created": lut.provenance.get("created"),
        "entries": len(lut),
    }


def energy_basis(source: Lut, preset: SpacePreset) -> str:
    """Energy is mapped from the source's energy where it prices every part it holds, else from
    its latency (the target's energy is then fitted as a function of the source's time)."""
    held = [s.key for s in preset.all_specs() if s.key in source]
    return "energy" if all(source.energy_mj(k) is not None for k in held) else "latency"


def part_value(
    source: Lut, spec: LayerSpec, basis: str, grouping: str | None = None
) -> tuple[str, float]:
    """(column, figure) of one part: the source's figure, or its MMACs where the source has none
    or the ``macs`` grouping prices every part by its MACs."""
    if grouping == MACS:
        return macs_column(fine_group(spec)), spec.macs() / 1e6
    if spec.key in source:
        value = source.latency_ms(spec.key) if basis == "latency" else source.energy_mj(spec.key)
        return fine_group(spec), float(value or 0.0)
    return UNPRICED, spec.macs() / 1e6


def network_row(
    source: Lut, preset: SpacePreset, arch: dict[str, Any], basis: str
) -> tuple[dict[str, float], int]:
    """A network's source figures and its MMACs, each summed per fine group (the ``macs``
    grouping's columns), and its number of parts (as we run it: the ``ours`` accounting)."""
    parts = arch_parts(preset, MultimodalArch.from_dict(arch))
    row: dict[str, float] = {}
    for _, spec in parts:
        for grouping in (None, MACS):
            column, value = part_value(source, spec, basis, grouping)
            row[column] = row.get(column, 0.0) + value
    return row, len(parts)


def _fit_metric(
    source: Lut, preset: SpacePreset, networks: list[WholeNetwork], basis: str, metric: str
) -> MetricTransfer:
    rows, counts = zip(*(network_row(source, preset, n.arch, basis) for n in networks), strict=True)
    measured = [n.latency_ms if metric == "latency" else n.energy_mj for n in networks]
    selection = choose(rows, counts, measured)
    predicted = cross_validate(rows, counts, measured)
    sums = [sum(v for g, v in row.items() if not in_mmac(g)) for row in rows]
    return MetricTransfer(basis, selection, fidelity(predicted, measured), fidelity(sums, measured))


def build_lut(
    source: Lut,
    source_info: dict[str, Any],
    preset: SpacePreset,
    device: DeviceProfile,
    host: HostInfo | None,
    networks: list[WholeNetwork],
    seed: int = 0,
) -> tuple[Lut, TransferReport]:
    """The transferred LUT and its report, from networks already measured on the target."""
    if len(networks) < 4:
        raise HnasError(f"{len(networks)} networks are too few; give at least 4")
    latency = _fit_metric(source, preset, networks, "latency", "latency")
    metered = all(n.energy_mj is not None for n in networks)
    energy = None
    if metered:
        energy = _fit_metric(source, preset, networks, energy_basis(source, preset), "energy")
    specs = preset.all_specs()
    unpriced = dict(Counter(s.kind for s in specs if s.key not in source))
    entries = {
        spec.key: _entry(source, spec, latency, energy, device, source_info) for spec in specs
    }
    lat_model = latency.selection.model
    calibration = {
        "latency": Calibration(1.0, lat_model.intercept, lat_model.per_part, lat_model.fitted_on)
    }
    if energy is not None:
        e = energy.selection.model
        calibration["energy"] = Calibration(1.0, e.intercept, e.per_part, e.fitted_on)
    else:  # estimated energy is nominal power × time: the latency calibration, in millijoules
        power = device.nominal_power_w
        lat = calibration["latency"]
        calibration["energy"] = Calibration(1.0, lat.b * power, lat.c * power, lat.fitted_on)
    report = TransferReport(source_info, preset.name, tuple(networks), latency, energy, unpriced)
    settings: dict[str, Any] = {
        "batch": source.batch,  # the networks were measured at the source's batch
        "space": preset.name,
        "seed": seed,
        "samples": len(networks),
        **device.timing_dict(),
    }
    if host is not None:
        settings["idle_power_w"] = host.idle_power_w
    lut = Lut(
        device=device_header(device, host),
        settings=settings,
        provenance=provenance(
            {
                "source": source_info["path"],
                "space": preset.name,
                "samples": len(networks),
                "seed": seed,
            }
        ),
        calibration=calibration,
        entries=entries,
        extra={"transfer": report.to_dict()},
    )
    return lut, report


def _entry(
    source: Lut,
    spec: LayerSpec,
    latency: MetricTransfer,
    energy: MetricTransfer | None,
    device: DeviceProfile,
    source_info: dict[str, Any],
) -> dict[str, Any]:
    lat_model = latency.selection.model
    group, value = part_value(source, spec, "latency", lat_model.grouping)
    scale = lat_model.scale_of(group)
    latency_ms = scale * value
    if energy is None:
        power = device.nominal_power_w
        energy_mj: dict[str, Any] = {
            "total": power * latency_ms,
            "dynamic": None,
            "source": "estimate",
            "estimate": True,
            "nominal_power_w": power,
        }
    else:
        e_model = energy.selection.model
        e_group, e_value = part_value(source, spec, energy.basis, e_model.grouping)
        e_scale = e_model.scale_of(e_group)
        energy_mj = {"total": e_scale * e_value, "dynamic": None, "source": "transferred"}
    return {
        "spec": spec.to_dict(),
        "latency_ms": {"median": latency_ms},
        "energy_mj": energy_mj,
        "origin": {
            "kind": "transferred",
            "source": Path(source_info["path"]).name,
            "source_device": source_info["device"],
            "group": group,
            "scale": scale,
            "source_value": value,
            "source_unit": "MMAC" if in_mmac(group) else "ms",
        },
    }


def check_request(request: TransferRequest) -> tuple[Lut, SpacePreset]:
    """Everything that can be refused before measuring: nothing is written on refusal."""
    if request.samples < 4:
        raise HnasError(
            f"--samples {request.samples} is too few; give at least 4 (better 20: docs/luts.md)"
        )
    if request.out.exists() and request.out.resolve() == request.source.resolve():
        raise HnasError(f"--out {request.out} is the source LUT; write the transfer elsewhere")
    claim_output(request.out, force=request.force)
    source = Lut.load(request.source)
    preset = get_preset(request.space)
    backbone = [s for s in preset.all_specs() if s.kind in BACKBONE_KINDS]
    if not any(s.key in source for s in backbone):
        raise HnasError(
            f"{request.source} prices no backbone part of space {request.space}; transfer from "
            f"a LUT of that space (check it with `hnas lut check {request.source} "
            f"--space {request.space}`)"
        )
    return source, preset


def transfer(
    request: TransferRequest, on_progress: Callable[[int, int], None] | None = None
) -> TransferReport:
    """Check, measure the networks, fit, write the LUT atomically; return the report."""
    source, preset = check_request(request)
    info = source_identity(source, request.source)
    start = time.monotonic()
    with lut_output(request.out, force=request.force), Bench.open(request.device) as bench:
        host = bench.host_info()
        networks = measure_networks(
            bench, preset.name, request.samples, request.seed, on_progress, source.batch
        )
        lut, report = build_lut(source, info, preset, request.device, host, networks, request.seed)
        seconds = time.monotonic() - start
        lut.extra["transfer"]["seconds"] = seconds
        lut.save(request.out)
    return replace(report, seconds=seconds)


def held_out_table(report: TransferReport) -> list[tuple[str, Fidelity, Fidelity]]:
    """(metric, transferred model cross-validated, source's raw sums) over the networks."""
    rows = [("latency", report.latency.held_out, report.latency.held_out_source)]
    if report.energy is not None:
        rows.append(("energy", report.energy.held_out, report.energy.held_out_source))
    return rows
