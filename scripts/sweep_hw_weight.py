"""How λ (``--hw-weight``) trades accuracy for cost in stage 2: the same candidates fused at
several λ, with everything else fixed.

    python scripts/sweep_hw_weight.py --lut cpu.json --supernets supernets \\
        --candidates 6 --weights 0 0.03 0.1 0.3 1 --out sweep.json

Candidates are drawn at random from the dataset's space with ``--seed`` (backbones and C × D),
so every λ fuses the same ones. Per λ it prints the operators derived over all candidates, the
mean validation metric, the mean predicted latency, how many candidates end below their best
backbone alone, and the size of the (error, latency) front of the candidates; ``--out`` keeps
every record.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.io import atomic_write_json, provenance
from hnas_edge.search.config import SearchConfig, get_budget
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.darts import DartsConfig
from hnas_edge.search.evaluate import FusionJob, Worker, fuse_candidate, open_worker, score_backbone
from hnas_edge.search.evolution import first_front, random_individual
from hnas_edge.search.records import individual_id


def fuse_all(worker: Worker, individuals: list, weight: float) -> list[dict[str, Any]]:
    context, cache = worker.context, worker.cache
    base = context.config
    context.config = replace(base, darts=replace(base.darts, hw_weight=weight))
    records = []
    for individual in individuals:
        job = FusionJob(individual, individual_id(individual), seed=0, generation=0)
        result = fuse_candidate(context, cache, job).result.to_dict()
        best_alone = max(
            score_backbone(context, m, c).val_metric for m, c in individual.backbones.items()
        )
        records.append({"id": individual_id(individual), "best_backbone": best_alone, **result})
    context.config = base
    return records


def summary(weight: float, records: list[dict[str, Any]]) -> dict[str, Any]:
    ops = Counter(
        node["op"]
        for r in records
        for cell in r["architecture"]["fusion"]["genotype"]["cells"]
        for node in cell["nodes"]
    )
    objectives = np.array([[1 - r["val_metric"], r["latency_ms"]] for r in records])
    return {
        "hw_weight": weight,
        "operators": dict(ops.most_common()),
        "mean_val": float(np.mean([r["val_metric"] for r in records])),
        "mean_latency_ms": float(np.mean([r["latency_ms"] for r in records])),
        "below_best_backbone": sum(r["val_metric"] < r["best_backbone"] for r in records),
        "front": len(first_front(objectives)),
        "seconds_per_candidate": float(np.mean([r["seconds"] for r in records])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lut", type=Path, required=True)
    parser.add_argument("--supernets", type=Path, required=True)
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.03, 0.1, 0.3, 1])
    parser.add_argument("--budget", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("sweep.json"))
    args = parser.parse_args()

    config = SearchConfig(darts=get_budget(args.budget).apply(DartsConfig(seed=args.seed)))
    config = replace(config, finetune_epochs=get_budget(args.budget).finetune_epochs)
    inputs = SearchInputs(args.supernets, args.dataset, None, args.lut, config, args.out.parent)
    worker = open_worker(inputs)
    rng = random.Random(args.seed)
    individuals = [random_individual(worker.context.preset, rng) for _ in range(args.candidates)]
    rows, records = [], {}
    for weight in args.weights:
        records[str(weight)] = fuse_all(worker, individuals, weight)
        rows.append(summary(weight, records[str(weight)]))
        print(rows[-1], flush=True)
    atomic_write_json(
        args.out,
        {
            "summary": rows,
            "records": records,
            "provenance": provenance({k: str(v) for k, v in vars(args).items()}),
        },
    )


if __name__ == "__main__":
    main()
