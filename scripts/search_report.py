"""What a finished (or running) search did, from its ``state.json``: the operators its fused
candidates derived, how many were fused per generation, the hypervolume, the front, how many
fused candidates end below their best backbone alone, and stage 2's time per candidate.

    python scripts/search_report.py result/ [more results/ ...]

Reads format 1 states too (they called the validation metric ``val_acc``), so a search made
before a change can be compared with one made after it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.search.evolution import first_front
from hnas_edge.space.fusion import Genotype


def val_score(scores: dict[str, Any]) -> float:
    return scores["val_metric"] if "val_metric" in scores else scores["val_acc"]


def genotype_of(record: dict[str, Any]) -> Genotype:
    return Genotype.from_dict(record["fusion"]["architecture"]["fusion"]["genotype"])


def best_alone(record: dict[str, Any]) -> float:
    return max(val_score(s) for s in record["unimodal"].values())


def mean_of(fused: list[dict[str, Any]], read: Any) -> float:
    return round(float(np.mean([read(r["fusion"]) for r in fused])), 1)


def report(folder: Path) -> dict[str, Any]:
    state = json.loads((folder / "state.json").read_text())
    fused = [r for r in state["records"].values() if r["fusion"]]
    genotypes = [
        Genotype.from_dict(r["fusion"]["architecture"]["fusion"]["genotype"]) for r in fused
    ]
    objectives = np.array([[1 - val_score(r["fusion"]), r["fusion"]["latency_ms"]] for r in fused])
    front = [fused[i] for i in first_front(objectives)] if fused else []
    gaps = [
        val_score(r["fusion"]) - max(val_score(s) for s in r["unimodal"].values()) for r in fused
    ]
    per_generation = Counter(r["fusion"]["generation"] + 1 for r in fused)
    return {
        "folder": str(folder),
        "fused": len(fused),
        "fused_per_generation": [per_generation[g] for g in sorted(per_generation)],
        "operators_all_nodes": dict(Counter(op for g in genotypes for op in g.ops()).most_common()),
        "operators_live_nodes": dict(
            Counter(op for g in genotypes for op in g.live_ops()).most_common()
        ),
        "hypervolume": [round(h["hypervolume"], 4) for h in state["hypervolume"]],
        "front": [
            {
                "id": r["id"],
                "val": round(val_score(r["fusion"]), 4),
                "latency_ms": round(r["fusion"]["latency_ms"], 4),
                "cells_nodes": f"{r['individual']['cells']}x{r['individual']['nodes']}",
                "live_ops": genotype_of(r).live_ops(),
            }
            for r in sorted(front, key=lambda r: r["fusion"]["latency_ms"])
        ],
        "below_best_backbone": sum(gap < 0 for gap in gaps),
        "more_than_1pt_below": sum(gap < -0.01 for gap in gaps),
        "worst_gap": round(min(gaps), 4) if gaps else None,
        "stage2_seconds_per_candidate": {
            "mean": round(float(np.mean([r["fusion"]["seconds"] for r in fused])), 1),
            "by_step_mean": {
                step: round(
                    float(np.mean([r["fusion"]["seconds_by_step"][step] for r in fused])), 1
                )
                for step in ("features", "darts", "finetune")
            },
        }
        if fused
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    for folder in parser.parse_args().folders:
        print(json.dumps(report(folder), indent=1))


if __name__ == "__main__":
    main()
