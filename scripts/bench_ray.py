"""Stage 2 on Ray vs in one process: speed-up of 2 Ray workers over 1, per-task overhead and
object-store use, on one search budget (one generation, so every candidate goes through stage 2
in one batch).

    python scripts/bench_ray.py --lut cpu.json --supernets supernets --out bench-ray

Runs the same search three times into OUT/{in-process,ray-1,ray-2}: in this process, then on a
new local Ray instance of 1 CPU, then of 2 CPUs (one CPU per task). Prints and writes
OUT/bench_ray.json: stage-2 wall time of each, the sum of the candidates' own times, the speed-up
ray-1 / ray-2, the overhead per task (ray-1 wall − in-process wall, per candidate), the bytes
put in the object store, and whether the three fronts are the same. Run it on an otherwise idle
machine: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from hnas_edge.io import atomic_write_json, provenance
from hnas_edge.search.config import SearchConfig
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.darts import DartsConfig
from hnas_edge.search.engine import search
from hnas_edge.search.evolution import EvolutionConfig
from hnas_edge.search.executor import RayOptions
from hnas_edge.search.results import write_results


def run(args: argparse.Namespace, name: str, ray: RayOptions | None) -> dict[str, Any]:
    config = SearchConfig(
        evolution=EvolutionConfig(args.population, 1, quartile=args.quartile, seed=args.seed),
        darts=DartsConfig(epochs=args.darts_epochs, seed=args.seed),
        finetune_epochs=args.finetune_epochs,
    )
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    inputs = SearchInputs(args.supernets, args.dataset, None, args.lut, config, out)
    runner, state = search(inputs, ray=ray)
    result = write_results(runner, state)
    fused = state.fused()
    return {
        "stage2_wall_s": state.seconds["stage2_wall"],
        "stage2_jobs_s": state.seconds["stage2_jobs"],
        "candidates": len(fused),
        "executor": result["executor"],
        "metric": result["metric"],
        "front": [(m["id"], m["val_metric"]) for m in result["models"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", type=Path, required=True)
    parser.add_argument("--supernets", type=Path, required=True)
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--out", type=Path, default=Path("bench-ray"))
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--quartile", type=float, default=0.25)
    parser.add_argument("--darts-epochs", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    torch.set_num_threads(1)  # as each Ray task runs (one CPU per task)
    runs = {"in-process": run(args, "in-process", None)}
    for cpus in (1, 2):
        options = RayOptions(address="local", init_options={"num_cpus": cpus})
        runs[f"ray-{cpus}"] = run(args, f"ray-{cpus}", options)
    base, one, two = runs["in-process"], runs["ray-1"], runs["ray-2"]
    summary = {
        "speedup_2_vs_1": one["stage2_wall_s"] / two["stage2_wall_s"],
        "overhead_per_task_s": (one["stage2_wall_s"] - base["stage2_wall_s"]) / one["candidates"],
        "same_front": base["front"] == one["front"] == two["front"],
        "runs": runs,
        "provenance": provenance(vars(args) | {"lut": str(args.lut), "out": str(args.out)}),
    }
    atomic_write_json(args.out / "bench_ray.json", json.loads(json.dumps(summary, default=str)))
    for name, r in runs.items():
        shared = r["executor"].get("shared_bytes_put")
        console.print(
            f"{name:>10}: stage 2 {r['stage2_wall_s']:.1f} s wall for {r['candidates']} "
            f"candidates (their own time {r['stage2_jobs_s']:.1f} s)"
            + (f", {r['executor']['shared_objects_put']} objects / {shared / 1e6:.1f} MB put"
               if shared is not None else "")
        )  # fmt: skip
    console.print(
        f"speed-up 2 vs 1 Ray workers: {summary['speedup_2_vs_1']:.2f}×; overhead per task "
        f"{summary['overhead_per_task_s']:+.2f} s; same front: {summary['same_front']}"
    )


if __name__ == "__main__":
    main()
