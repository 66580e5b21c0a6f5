"""How the LUT commands show their results: `lut show/check/predict/validate/transfer/compare`
and `profile --validate`'s calibration line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hnas_edge.profiling.lut import Calibration, Lut
from hnas_edge.profiling.state import load_warnings
from hnas_edge.profiling.summary import LutSummary
from hnas_edge.profiling.transfer import MACS, PER_MMAC, TransferModel, in_mmac
from hnas_edge.ui.text import warn

if TYPE_CHECKING:
    from hnas_edge.profiling.architecture import PricedArchitecture
    from hnas_edge.profiling.compare import Agreement, Comparison
    from hnas_edge.profiling.cost import CostBreakdown
    from hnas_edge.profiling.coverage import Coverage
    from hnas_edge.profiling.lut_transfer import TransferReport
    from hnas_edge.profiling.validate import MetricReport, ValidationReport


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def print_lut_summary(console: Console, summary: LutSummary, path: Path) -> None:
    device = summary.device
    console.print(f"[bold]{path}[/]  ({summary.entries} entries, created {summary.created or '?'})")
    console.print(
        f"device {device.get('name')}  runtime {device.get('runtime')} "
        f"{summary.runtime_version}  precision {device.get('precision')}  "
        f"batch {summary.batch}  meter {summary.meter}"
    )
    if summary.batch > 1:
        console.print(f"figures are per batch of {summary.batch} samples (latency and energy)")
    if summary.nodes:
        console.print(f"measured on: {_fmt_counts(summary.nodes)}")
    console.print(f"origin: {_fmt_counts(summary.origins)}")
    energy = _fmt_counts(summary.energy_sources)
    if summary.energy_estimated:
        energy += f"  [yellow]({summary.energy_estimated} entries are ESTIMATES, not measured)[/]"
    console.print(f"energy: {energy}")
    if summary.cv_quantiles:
        q = summary.cv_quantiles
        console.print(
            f"latency spread (robust CoV) across entries: median {q['p50']:.1%}, "
            f"p90 {q['p90']:.1%}, max {q['max']:.1%}"
        )
    table = Table("kind", "entries", "latency min (ms)", "latency max (ms)", "median CoV")
    for kind in summary.kinds:
        cv = "-" if kind.median_cv is None else f"{kind.median_cv:.1%}"
        table.add_row(
            kind.kind,
            str(kind.entries),
            f"{kind.latency_min_ms:.4f}",
            f"{kind.latency_max_ms:.4f}",
            cv,
        )
    console.print(table)
    if summary.drift:
        drift = summary.drift
        console.print(
            f"drift reference {drift.reference}: baseline {drift.baseline_ms:.4f} ms, timed "
            f"{drift.timings}× while measuring at ×{drift.fastest:.3f}–×{drift.slowest:.3f} of it "
            "(entries corrected to the baseline speed)",
            highlight=False,
        )
    tolerance = summary.settings.get("quiet_tolerance") or 0
    if summary.gated:
        console.print(
            f"slow spells: {summary.dropped_s:.1f} s of timing dropped while the machine ran slow, "
            f"over {summary.gated} entries (quiet_tolerance {tolerance:g})"
            if tolerance > 0
            else "slow spells: not watched (quiet_tolerance 0)",
            highlight=False,
        )
    if summary.transfer:
        transfer = summary.transfer
        latency = transfer.get("latency") or {}
        held = latency.get("held_out") or {}
        console.print(
            f"transferred from {source_text(transfer.get('source') or {})}: "
            f"{(latency.get('model') or {}).get('grouping')} model fitted on "
            f"{(latency.get('model') or {}).get('fitted_on')} networks; cross-validated: "
            f"{held.get('within_10pct', 0):.0%} within ±10%, "
            f"Spearman {held.get('spearman', float('nan')):.3f}",
            highlight=False,
        )
        for warning in transfer.get("warnings") or []:
            warn(console, warning)
    if summary.calibration:
        for metric, cal in summary.calibration.items():
            console.print(
                f"{calibration_text(Calibration.from_dict(cal), metric)}", highlight=False
            )
    else:
        console.print("calibration: none yet (run `hnas lut validate` to fit one)")


def print_interleaved(console: Console, validation: Mapping[str, Any]) -> None:
    """``hnas profile --validate``: the calibration fitted on the networks measured among the
    parts, in one line, from the record the LUT holds (``validation``)."""
    latency = validation["latency"]
    held = latency["held_out_after"]
    errors = ", ".join(
        f"{name} {error:.1%}" for name, error in latency["held_out_error_by_calibration"].items()
    )
    console.print(
        f"{validation['n']} whole networks measured among the parts; after calibration "
        f"({latency['calibration_chosen']}; held-out mean error {errors}): "
        f"{held['within_10pct']:.0%} of the held-out ones within ±10%, Spearman "
        f"{held['spearman']:.3f}, mean error {held['mean_abs_rel_error']:.1%}",
        highlight=False,
    )


def calibration_text(cal: Calibration, metric: str = "latency") -> str:
    """One line: the plain model's a, c, b, or the per-kind model's scales, c and b."""
    if cal.grouping is None:
        model = f"a={cal.a:.4f} c={cal.c:.5f} b={cal.b:.4f}"
    else:
        scales = " ".join(f"{g}×{v:.3f}" for g, v in cal.scales.items())
        model = f"per part kind ({cal.grouping}: {scales}) c={cal.c:.5f} b={cal.b:.4f}"
    return f"calibration {metric}: {model} (fitted on {cal.fitted_on} networks)"


def print_coverage(console: Console, report: Coverage, path: Path) -> None:
    needed, missing = report.needed, len(report.missing)
    what = f"space {report.space} ({report.accounting} accounting)"
    if report.complete:
        console.print(f"{path}: all {needed} keys of {what} are present")
        return
    by_kind = ", ".join(f"{k}: {n}" for k, n in report.missing_by_kind().items())
    console.print(
        f"{path}: {missing} of {needed} keys of {what} missing "
        f"({report.share:.1%} covered; {by_kind})"
    )
    for key in report.missing:
        console.print(f"  missing {key}", highlight=False)


def _mj(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_prediction(
    console: Console, priced: PricedArchitecture, cost: CostBreakdown, lut: Lut
) -> None:
    table = Table("part", "latency (ms)", "energy (mJ)", "key")
    for part in cost.parts:
        table.add_row(part.name, f"{part.latency_ms:.4f}", _mj(part.energy_mj), part.key)
    console.print(table)
    device = lut.device.get("name")
    if lut.batch > 1:
        device = f"{device} at batch {lut.batch} (figures per batch)"
    console.print(
        f"{priced.what} on {device} ({priced.accounting} accounting, {cost.n_parts} parts): "
        f"sum {cost.latency_sum_ms:.2f} ms, {_mj(cost.energy_sum_mj)} mJ"
    )
    if cost.calibrated:
        console.print(
            f"calibrated whole network: {cost.latency_ms:.2f} ms, {_mj(cost.energy_mj)} mJ"
        )
    else:
        console.print("no calibration in this LUT: the sum is the estimate")
    if cost.energy_is_estimate:
        console.print(
            "[yellow]energy figures are ESTIMATES (nominal power × time), not measured[/]"
        )


def _fidelity_row(table: Table, label: str, report: MetricReport) -> None:
    for when, fid in (("before", report.before), ("after", report.after)):
        table.add_row(
            label,
            when,
            str(fid.n),
            f"{fid.within_5:.0%}",
            f"{fid.within_10:.0%}",
            f"{fid.spearman:.3f}",
            f"{fid.mean_abs_rel_error:.1%}",
        )


def print_validation(console: Console, report: ValidationReport, path: Path) -> None:
    from hnas_edge.profiling.validate import FIDELITY_TARGET  # here: it pulls torch, lut show not

    at = f" at batch {report.batch}" if report.batch > 1 else ""
    console.print(
        f"{len(report.networks)} networks measured end to end{at}; calibration fitted on every "
        "other one, figures below on the others (held out)"
    )
    table = Table("metric", "calibration", "networks", "±5%", "±10%", "Spearman", "mean |err|")
    _fidelity_row(table, "latency", report.latency)
    if report.energy is not None:
        _fidelity_row(table, "energy", report.energy)
    console.print(table)
    console.print(f"{calibration_text(report.latency.calibration)}, written to {path}")
    if len(report.latency.candidates) > 1:
        errors = ", ".join(
            f"{name} {error:.1%}" for name, error in report.latency.candidates.items()
        )
        console.print(
            f"held-out mean error by calibration: {errors}; kept {report.latency.chosen}",
            highlight=False,
        )
    if report.drift:
        factors = report.drift.get("factors") or [1.0]
        console.print(
            f"drift reference timed {len(report.drift.get('times', []))}×; networks corrected "
            f"to the LUT's speed by ×{min(factors):.3f}–×{max(factors):.3f}"
            + (
                ""
                if report.drift.get("baseline_from") == "lut"
                else " (the LUT has no reference: this validation's median speed)"
            )
            + (
                f"; measured on core {report.pinned_core}" if report.pinned_core is not None else ""
            ),
            highlight=False,
        )
    if report.energy is None:
        console.print("energy: estimated from latency here, so it follows the same calibration")
    busy = load_warnings(report.load)
    for line in busy:
        console.print(line, markup=False, highlight=False)
    if report.below_target:
        # on an idle machine the misses are not others' work: advice to stop it would send
        # the user after the wrong cause
        advice = (
            "re-measure on an idle machine (`hnas profile` and `hnas lut validate` with nothing "
            "else running), and give more --samples"
            if busy
            else "the machine was not busy, so the misses are likely timings taken in slow spells "
            "of the machine that the quiet-machine gate let through (docs/luts.md): profile and "
            "validate again, give more --samples, check that the device TOML's quiet_tolerance "
            "is not 0, and read predicted latencies as estimates"
        )
        console.print(
            f"fidelity is low: after calibration {report.latency.after.within_10:.0%} of the "
            f"held-out networks are within ±10% of their measured latency (below "
            f"{FIDELITY_TARGET:.0%}), so the search would rank networks on figures this device "
            f"does not reproduce; {advice}",
            markup=False,
            highlight=False,
        )


def source_text(source: Mapping[str, Any]) -> str:
    """A transfer's source in one phrase: device, runtime, precision, file and hash."""
    threads = f", {source['threads']} thread(s)" if source.get("threads") else ""
    sha = str(source.get("sha256"))[:12]
    return (
        f"{source.get('device')} ({source.get('runtime')}, {source.get('precision')}{threads}; "
        f"{source.get('origin')}) from {source.get('path')}, sha256 {sha}"
    )


def _scales_text(model: TransferModel, unit: str) -> str:
    scales = ", ".join(
        f"{group.removesuffix(PER_MMAC)} {value:.3g} {unit}/MMAC"
        if in_mmac(group)
        else f"{group} ×{value:.3g}"
        for group, value in model.scales.items()
    )
    return (
        f"{scales}; per part {model.per_part:+.4f} {unit}, intercept {model.intercept:+.4f} {unit}"
    )


def print_transfer(console: Console, report: TransferReport, path: Path) -> None:
    from hnas_edge.profiling.lut_transfer import held_out_table  # here: it pulls torch

    console.print(f"source: {source_text(report.source)}", highlight=False)
    console.print(
        f"{len(report.networks)} networks measured end to end in {report.seconds:.0f} s; the "
        "LUT's model is fitted on all of them, the figures below are cross-validated (each "
        "network predicted by a model fitted without it)"
    )
    for metric, transferred in (("latency", report.latency), ("energy", report.energy)):
        if transferred is None:
            continue
        model = transferred.selection.model
        errors = ", ".join(f"{g} {e:.1%}" for g, e in transferred.selection.loo_error.items())
        basis = (
            "the parts' MACs (the source is not used)"
            if model.grouping == MACS
            else f"the source's {transferred.basis}"
        )
        console.print(
            f"{metric} from {basis}: model [bold]{model.grouping}[/]"
            + (f" (leave-one-out error: {errors})" if errors else ""),
            highlight=False,
        )
        unit = "ms" if metric == "latency" else "mJ"
        console.print(f"  {_scales_text(model, unit)}", highlight=False)
    table = Table("metric", "prices", "networks", "±5%", "±10%", "Spearman", "mean |err|")
    for metric, fid, raw in held_out_table(report):
        for label, f in (("source sums", raw), ("transferred", fid)):
            table.add_row(
                metric,
                label,
                str(f.n),
                f"{f.within_5:.0%}",
                f"{f.within_10:.0%}",
                f"{f.spearman:.3f}",
                "-" if label == "source sums" else f"{f.mean_abs_rel_error:.1%}",
            )
    console.print(table)
    fitted = [m.selection.model for m in (report.latency, report.energy) if m is not None]
    if report.unpriced and any(model.grouping != MACS for model in fitted):
        kinds = ", ".join(f"{kind}: {n}" for kind, n in report.unpriced.items())
        console.print(
            f"parts the source does not price ({kinds}) are priced by their MACs", highlight=False
        )
    if report.energy is None:
        console.print("energy: estimated from latency here (nominal power × time)")
    for warning in report.warnings():
        warn(console, warning)
    console.print(f"wrote {path}")


def print_comparison(console: Console, comparison: Comparison, first: Path, second: Path) -> None:
    console.print(f"B = {second} against A = {first} ({comparison.accounting} accounting)")
    if comparison.mixed_batches:
        a, b = comparison.batches
        console.print(
            f"A is at batch {a}, B at batch {b}: figures are per batch, so B/A is how cost "
            f"grows from batch {a} to batch {b}, not how two devices differ"
        )
    table = Table("what", "n", "B/A median", "B/A p10–p90", "Spearman", "pairs flipped")
    rows: list[tuple[str, Agreement | None]] = [
        ("part latency", comparison.parts_latency),
        ("part energy", comparison.parts_energy),
        ("network latency", comparison.networks_latency),
        ("network energy", comparison.networks_energy),
    ]
    for label, agreement in rows:
        if agreement is None:
            continue
        table.add_row(
            label,
            str(agreement.n),
            f"{agreement.ratio_median:.3g}",
            f"{agreement.ratio_p10:.3g}–{agreement.ratio_p90:.3g}",
            f"{agreement.spearman:.3f}",
            f"{agreement.flipped_pairs:.1%}",
        )
    console.print(table)
    if comparison.networks_latency is None:
        console.print("whole networks not compared: a LUT lacks keys of the space (lut check)")
