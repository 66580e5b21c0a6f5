"""`hnas deploy` and the quickstart's summary on screen: measured beside predicted."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hnas_edge.ui.text import metric_label, relative

if TYPE_CHECKING:
    from hnas_edge.deploy.runner import BenchReport


def print_bench(console: Console, report: BenchReport, device: str) -> None:
    """``hnas deploy --bench``: what was measured, beside what the LUT predicted."""
    energy = (
        f"- ({report.energy_source})"
        if report.energy_mj is None
        else f"{report.energy_mj:.4f} mJ ({report.energy_source})"
    )
    per = f" at batch {report.batch} (per batch)" if report.batch > 1 else ""
    console.print(
        f"{device} ({report.runtime}){per}: latency median {report.latency_median_ms:.4f} ms, "
        f"p90 {report.latency_p90_ms:.4f} ms over {report.iterations} runs; energy {energy}"
    )
    if report.predicted_latency_ms is not None:
        console.print(
            f"predicted for {report.predicted_for}: {report.predicted_latency_ms:.4f} ms "
            f"({relative(report.latency_error)} measured vs predicted), energy "
            f"{report.predicted_energy_mj or 0:.4f} mJ ({relative(report.energy_error)})"
        )
    if report.speed is not None:
        now = report.predicted_now_ms
        tail = (
            ""
            if now is None
            else f"; predicted at today's speed {now:.4f} ms "
            f"({relative(report.latency_median_ms / now - 1)} measured vs that)"
        )
        console.print(
            f"this machine runs at {report.speed:.2f}× the speed it had when the LUT was made "
            f"(drift reference {report.reference_ms:.4f} ms now, "
            f"{report.reference_baseline_ms:.4f} ms then){tail}",
            highlight=False,
        )


def print_split(console: Console, score: Mapping[str, Any]) -> None:
    """``hnas deploy --split``: the task's metric by name, beside what the search reported
    (:func:`~hnas_edge.deploy.runner.evaluate_split`'s record)."""
    promised = score["search_test_metric"]
    tail = "" if promised is None else f" (search reported {promised:.2%} on test)"
    console.print(
        f"{score['split']}: {metric_label(score['metric'])} {score['value']:.2%} "
        f"on {score['samples']}{tail}"
    )


def print_quickstart(console: Console, record: Mapping[str, Any], out: Path) -> None:
    """The quickstart's models as its deploy stage measured them (quickstart.json as written)."""
    summary = record.get("summary", {})
    tested = {entry["test"]["metric"] for entry in summary.values()}  # one dataset: one metric
    label = " ".join(metric_label(metric) for metric in sorted(tested))
    table = Table(
        "model", "id", f"test {label}", f"search test {label}", "latency (ms)", "predicted", "error"
    )
    for role, entry in summary.items():
        bench, test = entry["bench"], entry["test"]
        table.add_row(
            role,
            entry["model_id"],
            f"{test['value']:.1%}",
            f"{test['search_test_metric']:.1%}",
            f"{bench['latency_median_ms']:.4f}",
            f"{bench['predicted_latency_ms']:.4f}",
            relative(bench["latency_error"]),
        )
    console.print(table)
    stages = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in record["stages"].items())
    console.print(f"stages: {stages}")
    console.print(
        f"plots: {out / 'search' / 'pareto.png'}, {out / 'search' / 'hypervolume.png'}; "
        f"models: {out / 'models'}"
    )
