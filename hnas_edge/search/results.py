"""What a finished search leaves in ``--out``::

    front.json                 the Pareto models: architecture, validation and test score
                               (``val_metric``, ``test_metric``) in the task's metric (``metric``:
                               accuracy or weighted_f1), predicted latency and energy, the LUT and
                               device they were made for
    candidates.csv             every evaluated candidate (stage 1 and, where run, stage 2); the
                               ``metric`` column names what the ``*val_metric`` columns are
    models/<id>/model.pt       each front model, whole (weights_only-safe), ready for export
    models/<id>/architecture.json
    pareto.png                 error vs latency and vs energy, unimodal and multimodal (Fig. 3)
    hypervolume.png            hypervolume of the multimodal front per generation
    state.json, candidates/    the search state (resume) and stage-2 weights of every candidate

Test metrics are computed here, once, for the front and for the best backbone of each modality
(by validation metric): the search itself never sees the test split.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from hnas_edge.accelerator import describe
from hnas_edge.io import atomic_write_json, atomic_write_text, provenance
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.engine import Search, SearchState, multimodal_objectives
from hnas_edge.search.evolution import first_front
from hnas_edge.search.plots import plot_hypervolume, plot_pareto
from hnas_edge.space.mmnn import MultimodalArch
from hnas_edge.train import checkpoint


def lut_identity(path: Path, lut: Lut, accounting: str) -> dict[str, Any]:
    """The LUT a search priced with; ``reference``: the drift reference's speed when it was
    profiled, which `hnas deploy --bench` compares today's with."""
    from hnas_edge.profiling.drift import REFERENCE, lut_baseline

    record: dict[str, Any] = {
        "path": str(path),
        "device": lut.device.get("name"),
        "runtime": lut.device.get("runtime"),
        "batch": lut.batch,  # what its costs are per, and what `hnas export` builds the graph at
        "accounting": accounting,
        "calibrated": not lut.calibration_for("latency").is_identity,
        "energy_is_estimate": lut.is_estimated_energy(),
    }
    baseline = lut_baseline(lut.extra.get("drift"))
    if baseline is not None:
        record["reference"] = {"network": REFERENCE, "baseline_ms": baseline}
    return record


def save_model(out: Path, record: dict[str, Any], net: torch.nn.Module) -> Path:
    folder = out / "models" / record["id"]
    architecture = record["fusion"]["architecture"]
    atomic_write_json(folder / "architecture.json", architecture)
    path = folder / "model.pt"
    checkpoint.save(
        path,
        {"architecture": json.dumps(architecture), "state_dict": net.state_dict()},
    )
    return path


def best_unimodal(runner: Search, state: SearchState) -> dict[str, Any]:
    """Per modality, the backbone with the best validation metric seen, with its test score."""
    best: dict[str, Any] = {}
    for key, score in state.backbone_scores.items():
        modality, config = key.split(":", 1)
        if modality not in best or score["val_metric"] > best[modality]["val_metric"]:
            best[modality] = {"config": json.loads(config), **score}
    for modality, entry in best.items():
        entry["test_metric"] = runner.evaluator.backbone_test_metric(modality, entry["config"])
    return best


def write_results(runner: Search, state: SearchState) -> dict[str, Any]:
    out = runner.inputs.out
    evaluator = runner.evaluator
    fused = [r for r in state.records.values() if r["fusion"] is not None]
    front = [fused[i] for i in first_front(multimodal_objectives(fused))]
    front.sort(key=lambda r: r["fusion"]["latency_ms"])
    models = []
    for record in front:
        fusion = record["fusion"]
        arch = MultimodalArch.from_dict(fusion["architecture"])
        net = evaluator.restore(arch, record["id"])
        models.append(
            {
                "id": record["id"],
                "architecture": fusion["architecture"],
                "val_metric": fusion["val_metric"],
                "test_metric": evaluator.test_metric(net),
                "latency_ms": fusion["latency_ms"],
                "energy_mj": fusion["energy_mj"],
                "generation": fusion["generation"],
                "checkpoint": str(save_model(out, record, net).relative_to(out)),
            }
        )
    unimodal = best_unimodal(runner, state)
    # where this process (stage 1, and stage 2 unless other workers ran it) computed
    accelerator = describe(evaluator.device, runner.inputs.deterministic)
    result = {
        "dataset": runner.inputs.dataset,
        "data_dir": runner.inputs.data_dir,
        "samples_limit": runner.config.limit,
        "preset": runner.preset.name,
        "mode": runner.mode.name,
        "metric": evaluator.metric,
        "lut": lut_identity(runner.inputs.lut, evaluator.lut, evaluator.accounting),
        "supernets": str(runner.inputs.supernets),
        "models": models,
        "best_unimodal": unimodal,
        "hypervolume": state.hypervolume,
        "hypervolume_reference": state.reference,
        "evaluated": {"stage1": len(state.records), "stage2": len(fused)},
        "seconds": state.seconds,
        "executor": runner.ran_on,
        "accelerator": accelerator,
        "provenance": provenance({**runner.config.to_dict(), "accelerator": accelerator}),
    }
    atomic_write_json(out / "front.json", result)
    on_front = {m["id"] for m in models}
    atomic_write_text(
        out / "candidates.csv",
        candidates_csv(state, runner.preset.modalities, on_front, evaluator.metric),
    )
    plot_pareto(out / "pareto.png", state, on_front, runner.preset.modalities, evaluator.metric)
    plot_hypervolume(out / "hypervolume.png", state.hypervolume)
    return result


UNIMODAL_FIELDS = ("val_metric", "latency_ms", "energy_mj")


def candidates_csv(
    state: SearchState, modalities: tuple[str, ...], on_front: set[str], metric: str
) -> str:
    per_modality = [f"{m}_{field}" for m in modalities for field in UNIMODAL_FIELDS]
    header = [
        "id",
        "generation",
        "cells",
        "nodes",
        "metric",
        *per_modality,
        "fused",
        "val_metric",
        "latency_ms",
        "energy_mj",
        "on_front",
        "fusion_seconds",
        "backbones",
        "genotype",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for record in state.records.values():
        individual, fusion = record["individual"], record["fusion"]
        unimodal = [record["unimodal"][m][field] for m in modalities for field in UNIMODAL_FIELDS]
        mm = (
            [
                True,
                fusion["val_metric"],
                fusion["latency_ms"],
                fusion["energy_mj"],
                record["id"] in on_front,
                round(fusion["seconds"], 2),
            ]
            if fusion
            else [False, "", "", "", False, ""]
        )
        genotype = fusion["architecture"]["fusion"]["genotype"] if fusion else None
        writer.writerow(
            [
                record["id"],
                record["generation"],
                individual["cells"],
                individual["nodes"],
                metric,
                *unimodal,
                *mm,
                json.dumps(individual["backbones"], sort_keys=True),
                json.dumps(genotype) if genotype else "",
            ]
        )
    return buffer.getvalue()
