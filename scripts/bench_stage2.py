"""Time stage 2 of one fixed candidate, split into backbone features, DARTS and fine-tune, at
each budget and on each accelerator asked for, and print the ratios measured in this run.

    python scripts/bench_stage2.py --lut cpu.json --supernets supernets \\
        --budgets small paper --accelerators cpu cuda --repeats 3 --out bench.json

An accelerator may name its precision (``--amp``) after a colon: ``--accelerators cpu cpu:bf16``
times the same candidate in fp32 and in bfloat16 on the CPU (without one: ``auto``).

The candidate is drawn with ``--seed`` from the supernets' space, with ``--cells`` × ``--nodes``
fusion cells (default 2 × 2), and fused with job seed 0 every time, so every run computes the same
network. Each repeat starts from an empty backbone cache (the features step is timed too), and
the repeats of every (budget, accelerator) pair are interleaved, so drift of a shared machine
hits all pairs alike. Reported: the median and the spread (min–max) of each step over the
repeats, the derived operators and the validation metric (the same in every repeat on the CPU:
a change there is a change of result, not of speed), peak GPU memory on CUDA, and the ratios of
medians: paper / small per accelerator, cpu / cuda per budget.

Also reported, per (budget, accelerator): the floor of DARTS on this machine, an estimate. The
FLOPs of DARTS's matrix products (forward and backward) are counted by torch on one weight step
and one architecture step of the candidate and scaled to the budget's epochs and samples; this
machine's rate is the best it reaches, in the accelerator's precision, on the products that make
most of them (a node's X or Y map, forward and both gradients). FLOPs / rate is what those
products alone take at that rate, whatever the code around them: no rewrite of the same
arithmetic gets DARTS below it; a lower precision or less arithmetic (another budget) can.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from hnas_edge.accelerator import Compute
from hnas_edge.io import atomic_write_json, provenance
from hnas_edge.search.cache import BackboneCache
from hnas_edge.search.config import SearchConfig, get_budget
from hnas_edge.search.context import SearchContext, SearchInputs
from hnas_edge.search.darts import DartsConfig, FusionSupernet, search_fusion
from hnas_edge.search.evaluate import FusionJob, fuse_candidate
from hnas_edge.search.evolution import Individual, random_individual
from hnas_edge.search.records import individual_id
from hnas_edge.space.mmnn import candidates

STEPS = ("features", "darts", "finetune")


def candidate(context: SearchContext, seed: int, cells: int, nodes: int) -> Individual:
    drawn = random_individual(context.preset, random.Random(seed))
    return replace(drawn, cells=cells, nodes=nodes)


def contexts(args: argparse.Namespace) -> dict[tuple[str, str], SearchContext]:
    """One context per (budget, accelerator): the same files, another stage-2 budget or device."""
    built = {}
    for budget_name in args.budgets:
        budget = get_budget(budget_name)
        config = SearchConfig(
            darts=budget.apply(DartsConfig(seed=0)),
            finetune_epochs=budget.finetune_epochs,
            limit=args.limit,
        )
        for label in args.accelerators:
            accelerator, _, amp = label.partition(":")
            compute = Compute(accelerator, amp=amp or "auto")
            inputs = SearchInputs(
                args.supernets, args.dataset, None, args.lut, config, Path("."), compute
            )
            built[budget_name, label] = SearchContext(inputs)
    return built


def run_once(context: SearchContext, individual: Individual) -> dict[str, Any]:
    job = FusionJob(individual, individual_id(individual), seed=0, generation=0)
    result = fuse_candidate(context, BackboneCache(), job).result
    record = result.to_dict()
    cells = record["architecture"]["fusion"]["genotype"]["cells"]
    return {
        "seconds": result.seconds,
        **{step: result.seconds_by_step.get(step, 0.0) for step in STEPS},
        "val_metric": result.val_metric,
        "operators": [node["op"] for cell in cells for node in cell["nodes"]],
        "peak_memory_mb": record["gpu"]["peak_memory_mb"] if record.get("gpu") else None,
    }


def darts_flops(context: SearchContext, individual: Individual) -> float:
    """FLOPs of the matrix products of ``individual``'s DARTS at ``context``'s budget: counted on
    one batch (a weight and an architecture step), scaled by epochs × training samples / batch."""
    preset, darts, device = context.preset, context.config.darts, context.device
    batch = darts.batch_size
    features = [torch.zeros(batch, *c.shape, device=device) for c in candidates(preset)]
    labels = context.labels["train"][:batch]
    supernet = FusionSupernet.of(preset, individual.cells, individual.nodes, darts.operators)
    with FlopCounterMode(display=False) as counter:
        search_fusion(
            supernet.to(device),
            (features, labels),
            (features, labels),
            context.task,
            context.op_costs,
            replace(darts, epochs=1),
            context.precision,
        )
    return counter.get_total_flops() * darts.epochs * len(context.labels["train"]) / batch


def product_rate(context: SearchContext, burst_s: float = 0.1, bursts: int = 5) -> float:
    """The best FLOP/s measured here, in ``context``'s precision, on the three products of a
    node's X (or Y) map — forward (B·L × C by C × 3C), its input's gradient (B·L × 3C by 3C × C)
    and its weight's (3C × B·L by B·L × C) — which make most of DARTS's arithmetic. The best of
    several short bursts: a slow spell of a shared machine would raise the floor."""
    preset, device = context.preset, context.device
    C, rows = preset.fusion_C, context.config.darts.batch_size * preset.fusion_L
    shapes = (((rows, C), (C, 3 * C)), ((rows, 3 * C), (3 * C, C)), ((3 * C, rows), (rows, C)))

    def took(a: torch.Tensor, b: torch.Tensor, n: int) -> float:
        with context.precision.autocast():
            torch.matmul(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(n):
                torch.matmul(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return time.perf_counter() - start

    best = 0.0
    for left, right in shapes:
        a, b = torch.randn(left, device=device), torch.randn(right, device=device)
        n = 1
        while took(a, b, n) < burst_s:
            n *= 2
        fastest = min(took(a, b, n) for _ in range(bursts))
        best = max(best, 2 * left[0] * left[1] * right[1] * n / fastest)
    return best


def floor(context: SearchContext, individual: Individual) -> dict[str, float]:
    flops, rate = darts_flops(context, individual), product_rate(context)
    return {"darts_gflop": flops / 1e9, "gflop_per_s": rate / 1e9, "seconds": flops / rate}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("seconds", *STEPS):
        values = [r[key] for r in runs]
        row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    row["val_metric"] = sorted({r["val_metric"] for r in runs})
    row["operators"] = sorted({" ".join(r["operators"]) for r in runs})
    peaks = [r["peak_memory_mb"] for r in runs if r["peak_memory_mb"] is not None]
    row["peak_memory_mb"] = max(peaks) if peaks else None
    return row


def ratios(rows: dict[tuple[str, str], dict[str, Any]], args: argparse.Namespace) -> list[str]:
    def median(budget: str, accelerator: str) -> float:
        return rows[budget, accelerator]["seconds"]["median"]

    lines = []
    if "small" in args.budgets and "paper" in args.budgets:
        for accelerator in args.accelerators:
            ratio = median("paper", accelerator) / median("small", accelerator)
            lines.append(f"paper / small on {accelerator}: {ratio:.2f}×")
    if "cpu" in args.accelerators and len(args.accelerators) > 1:
        for budget in args.budgets:
            for other in args.accelerators:
                if other != "cpu":
                    ratio = median(budget, "cpu") / median(budget, other)
                    lines.append(f"cpu / {other} at the {budget} budget: {ratio:.2f}×")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lut", type=Path, required=True)
    parser.add_argument("--supernets", type=Path, required=True)
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--budgets", nargs="+", default=["small", "paper"])
    parser.add_argument("--accelerators", nargs="+", default=["cpu"], help="NAME[:AMP] each.")
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the candidate's draw.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads.")
    parser.add_argument("--limit", type=int, default=None, help="Samples per split (a smoke run).")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every run.")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)  # a process entry point
    built = contexts(args)
    individual = candidate(next(iter(built.values())), args.seed, args.cells, args.nodes)
    print(f"candidate {individual_id(individual)}: {args.cells}×{args.nodes}, backbones "
          f"{individual.backbones}", flush=True)  # fmt: skip
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in built}
    for repeat in range(args.repeats):
        for key, context in built.items():
            runs[key].append(run_once(context, individual))
            run = runs[key][-1]
            print(f"repeat {repeat + 1} {key[0]:>5} {key[1]:>4}: {run['seconds']:7.1f} s "
                  + " ".join(f"{s} {run[s]:.1f}" for s in STEPS)
                  + f"  val {run['val_metric']:.4f}  {' '.join(run['operators'])}",
                  flush=True)  # fmt: skip
    rows = {key: summarise(value) for key, value in runs.items()}
    for key, context in built.items():
        rows[key]["darts_floor"] = floor(context, individual)
    print("\nbudget  device  total s (median, min–max)   features   darts   finetune   peak MB")
    for (budget, accelerator), row in rows.items():
        total = row["seconds"]
        print(f"{budget:>6}  {accelerator:>6}  {total['median']:8.1f} ({total['min']:.1f}–"
              f"{total['max']:.1f})       " + "   ".join(f"{row[s]['median']:7.1f}" for s in STEPS)
              + f"   {row['peak_memory_mb'] or '-'}")  # fmt: skip
    for line in ratios(rows, args):
        print(line)
    print("\nDARTS floor (estimate: its products' FLOPs counted, at this machine's best rate "
          "measured on a node's products)")  # fmt: skip
    for (budget, accelerator), row in rows.items():
        low, darts = row["darts_floor"], row["darts"]["median"]
        print(f"{budget:>6}  {accelerator:>6}  {low['darts_gflop']:8.0f} GFLOP at "
              f"{low['gflop_per_s']:6.1f} GFLOP/s: ≥ {low['seconds']:6.1f} s; DARTS took "
              f"{darts:.1f} s, {darts / low['seconds']:.2f}× it")  # fmt: skip
    if args.out is not None:
        atomic_write_json(
            args.out,
            {
                "rows": [{"budget": b, "accelerator": a, **row} for (b, a), row in rows.items()],
                "runs": [{"budget": b, "accelerator": a, "runs": r} for (b, a), r in runs.items()],
                "ratios": ratios(rows, args),
                "provenance": provenance({k: str(v) for k, v in vars(args).items()}),
            },
        )


if __name__ == "__main__":
    main()
