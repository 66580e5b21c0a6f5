"""Rich rendering of results for the CLI; no logic beyond layout lives here."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from hnas_edge.profiling.summary import LutSummary


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"


def print_lut_summary(console: Console, summary: LutSummary, path: Path) -> None:
    device = summary.device
    runtime = device.get("runtime_info") or {}
    console.print(f"[bold]{path}[/]  ({summary.entries} entries, created {summary.created or '?'})")
    console.print(
        f"device {device.get('name')}  runtime {device.get('runtime')} "
        f"{runtime.get('version', '')}  precision {device.get('precision')}  "
        f"meter {device.get('meter')}"
    )
    console.print(f"origin: {_fmt_counts(summary.origins)}")
    energy = _fmt_counts(summary.energy_sources)
    if summary.energy_estimated:
        energy += f"  [yellow]({summary.energy_estimated} entries are ESTIMATES, not measured)[/]"
    console.print(f"energy: {energy}")
    if summary.cv_quantiles:
        q = summary.cv_quantiles
        console.print(
            f"latency CoV across entries: median {q['p50']:.1%}, p90 {q['p90']:.1%}, "
            f"max {q['max']:.1%}"
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
    if summary.calibration:
        for metric, cal in summary.calibration.items():
            console.print(
                f"calibration {metric}: a={cal['a']:.4f} c={cal['c']:.5f} b={cal['b']:.4f} "
                f"(fitted on {cal['fitted_on']} networks)"
            )
    else:
        console.print("calibration: none yet (run `hnas lut validate` to fit one)")
