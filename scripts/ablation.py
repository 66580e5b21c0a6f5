"""The paper's ablation (Figure 4): the four search modes on one dataset, LUT and budget.

    python scripts/ablation.py --lut cpu.json --supernets supernets --out ablation \
        --population 16 --generations 4 --darts-epochs 3

Runs ``hnas search --mode M`` for fb-ff, fb-sf, sb-sf, sb-sf-hw into OUT/<mode> (resumable:
a finished mode is read back, not rerun), then writes OUT/ablation.csv, OUT/ablation.md and
OUT/ablation.png. "At matched score" compares each mode's cheapest front model whose
validation metric (the task's: accuracy or weighted F1) is at least fb-ff's minus
``--tolerance`` with the fb-ff network.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from hnas_edge.data.metrics import LABELS
from hnas_edge.io import atomic_write_text
from hnas_edge.search.config import MODES, SearchConfig, get_budget
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.darts import DEFAULT_HW_WEIGHT, DartsConfig
from hnas_edge.search.evolution import EvolutionConfig
from hnas_edge.search.plots import error_label, figure, save_png
from hnas_edge.ui.search import search_with_progress
from hnas_edge.ui.text import warn


def run_mode(args: argparse.Namespace, mode: str, console: Console) -> dict[str, Any]:
    out = args.out / mode
    if (out / "front.json").exists():
        return json.loads((out / "front.json").read_text())
    budget = get_budget(args.budget)
    darts = budget.apply(DartsConfig(hw_weight=args.hw_weight, seed=args.seed))
    config = SearchConfig(
        evolution=EvolutionConfig(args.population, args.generations, seed=args.seed),
        darts=replace(darts, epochs=args.darts_epochs or darts.epochs),
        mode=mode,
        finetune_epochs=budget.finetune_epochs,
    )
    inputs = SearchInputs(args.supernets, args.dataset, None, args.lut, config, out)
    console.print(f"[bold]{mode}[/]")
    overrun = budget.overrun_warning(config.darts)
    if overrun:
        warn(console, overrun)
    return search_with_progress(inputs, console, resume=(out / "state.json").exists())


def matched(models: list[dict[str, Any]], target: float, cost: str) -> dict | None:
    """The front model cheapest in ``cost`` among those whose validation metric is at least
    ``target``."""
    fit = [m for m in models if m["val_metric"] >= target and m[cost] is not None]
    return min(fit, key=lambda m: m[cost]) if fit else None


def table(results: dict[str, dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    (reference,) = results["fb-ff"]["models"]
    target = reference["val_metric"] - tolerance
    rows = []
    for mode, result in results.items():
        models = result["models"]
        best = max(models, key=lambda m: m["val_metric"])
        row: dict[str, Any] = {
            "mode": mode,
            "metric": result["metric"],
            "front": len(models),
            "best_val_metric": best["val_metric"],
            "best_test_metric": best["test_metric"],
            "min_latency_ms": min(m["latency_ms"] for m in models),
            "search_s": round(result["seconds"]["stage1"] + result["seconds"]["stage2_wall"]),
        }
        for cost in ("latency_ms", "energy_mj"):
            model = matched(models, target, cost)
            row[f"matched_{cost}"] = model[cost] if model else None
            row[f"matched_{cost}_val_metric"] = model["val_metric"] if model else None
            row[f"{cost}_gain_vs_fb-ff"] = (
                reference[cost] / model[cost] if model and reference[cost] else None
            )
        rows.append(row)
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def as_markdown(rows: list[dict[str, Any]], target: float, lut: str, metric: str) -> str:
    def fmt(value: Any) -> str:
        if value is None:
            return "—"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = list(rows[0])
    lines = [
        f"Ablation on LUT {lut}; matched {LABELS[metric]}: validation ≥ {target:.1%}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(fmt(row[k]) for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], path: Path, metric: str) -> None:
    fig, axes = figure(2)
    for ax, cost, label in (
        (axes[0], "latency_ms", "latency (ms, predicted)"),
        (axes[1], "energy_mj", "energy (mJ, predicted)"),
    ):
        for mode, result in results.items():
            models = sorted(result["models"], key=lambda m: m[cost] or 0)
            ax.plot(
                [m[cost] for m in models],
                [100 * (1 - m["val_metric"]) for m in models],
                "o-",
                label=mode,
            )
        ax.set_xlabel(label)
        ax.set_ylabel(error_label(metric))
        ax.grid(alpha=0.3)
    axes[0].legend()
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", type=Path, required=True)
    parser.add_argument("--supernets", type=Path, required=True)
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--budget", default="small", help="small or paper (hnas search --budget)")
    parser.add_argument("--darts-epochs", type=int, help="overrides the budget's")
    parser.add_argument("--hw-weight", type=float, default=DEFAULT_HW_WEIGHT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    console = Console()
    results = {mode: run_mode(args, mode, console) for mode in MODES}
    rows = table(results, args.tolerance)
    target = results["fb-ff"]["models"][0]["val_metric"] - args.tolerance
    metric = results["fb-ff"]["metric"]  # one dataset: every mode has the same
    atomic_write_text(args.out / "ablation.csv", as_csv(rows))
    markdown = as_markdown(rows, target, str(args.lut), metric)
    atomic_write_text(args.out / "ablation.md", markdown)
    plot(results, args.out / "ablation.png", metric)
    console.print(markdown)


if __name__ == "__main__":
    main()
