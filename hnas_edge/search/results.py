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

from hnas_edge.io import atomic_write_json, atomic_write_text, provenance, read_json
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.engine import Search, SearchState, multimodal_objectives
from hnas_edge.search.evaluate import backbone_test_metric, network_test_metric, restore
from hnas_edge.search.evolution import first_front
from hnas_edge.search.plots import plot_hypervolume, plot_pareto
from hnas_edge.search.records import (
    BackboneKey,
    BackboneScore,
    BestUnimodal,
    Evaluated,
    FrontModel,
    FusionResult,
    SearchResult,
)
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


def save_model(out: Path, candidate_id: str, arch: MultimodalArch, net: torch.nn.Module) -> Path:
    folder = out / "models" / candidate_id
    architecture = arch.to_dict()
    atomic_write_json(folder / "architecture.json", architecture)
    path = folder / "model.pt"
    checkpoint.save(
        path,
        {"architecture": json.dumps(architecture), "state_dict": net.state_dict()},
    )
    return path


def best_unimodal(runner: Search, state: SearchState) -> dict[str, BestUnimodal]:
    """Per modality, the backbone with the best validation metric seen, with its test score."""
    best: dict[str, tuple[BackboneKey, BackboneScore]] = {}
    for key, score in state.backbone_scores.items():
        if key.modality not in best or score.val_metric > best[key.modality][1].val_metric:
            best[key.modality] = (key, score)
    context, cache = runner.worker.context, runner.worker.cache
    return {
        modality: BestUnimodal(
            key.config, score, backbone_test_metric(context, cache, modality, key.config)
        )
        for modality, (key, score) in best.items()
    }


def front_of(state: SearchState) -> list[tuple[str, FusionResult]]:
    """The fused candidates on the multimodal front (id, stage-2 result), fastest first."""
    fused = [(r.id, r.fusion) for r in state.records.values() if r.fusion is not None]
    front = [fused[i] for i in first_front(multimodal_objectives([f for _, f in fused]))]
    return sorted(front, key=lambda pair: pair[1].cost.latency_ms)


def front_model(runner: Search, candidate_id: str, fusion: FusionResult) -> FrontModel:
    """A front candidate rebuilt from its saved weights, tested once, saved whole."""
    out, context, cache = runner.inputs.out, runner.worker.context, runner.worker.cache
    net = restore(context, cache, fusion.architecture, candidate_id)
    return FrontModel(
        id=candidate_id,
        architecture=fusion.architecture,
        val_metric=fusion.val_metric,
        test_metric=network_test_metric(context, cache, net),
        latency_ms=fusion.cost.latency_ms,
        energy_mj=fusion.cost.energy_mj,
        generation=fusion.generation,
        checkpoint=str(save_model(out, candidate_id, fusion.architecture, net).relative_to(out)),
    )


def search_result(runner: Search, state: SearchState) -> SearchResult:
    """The front tested and saved, the best backbones alone tested: what ``front.json`` holds."""
    context = runner.worker.context
    models = tuple(front_model(runner, *candidate) for candidate in front_of(state))
    unimodal = best_unimodal(runner, state)
    # where this process (stage 1, and stage 2 unless other workers ran it) computed
    accelerator = runner.inputs.compute.describe(context.device, context.precision)
    return SearchResult(
        dataset=runner.inputs.dataset,
        data_dir=runner.inputs.data_dir,
        samples_limit=runner.config.limit,
        preset=runner.preset.name,
        mode=runner.mode.name,
        metric=context.metric,
        lut=lut_identity(runner.inputs.lut, context.lut, context.accounting),
        supernets=str(runner.inputs.supernets),
        models=models,
        best_unimodal=unimodal,
        hypervolume=tuple(state.hypervolume),
        hypervolume_reference=state.reference,
        evaluated=Evaluated(stage1=len(state.records), stage2=len(state.fused())),
        seconds=state.seconds,
        executor=runner.ran_on,
        accelerator=accelerator,
        provenance=provenance({**runner.config.to_dict(), "accelerator": accelerator}),
    )


def write_results(runner: Search, state: SearchState) -> dict[str, Any]:
    """Test the front, save its models, write ``front.json`` (returned, as written), the CSV of
    every candidate and the plots."""
    out, modalities = runner.inputs.out, runner.preset.modalities
    result = search_result(runner, state)
    document = result.to_dict()
    atomic_write_json(out / "front.json", document)
    on_front = {m.id for m in result.models}
    csv_text = candidates_csv(state, modalities, on_front, result.metric)
    atomic_write_text(out / "candidates.csv", csv_text)
    plot_pareto(out / "pareto.png", state, on_front, modalities, result.metric)
    plot_hypervolume(out / "hypervolume.png", state.hypervolume)
    return document


def read_front(folder: Path) -> SearchResult:
    """The result a finished search wrote in ``folder``."""
    return SearchResult.from_dict(read_json(folder / "front.json", what="search result"))


UNIMODAL_FIELDS = ("val_metric", "latency_ms", "energy_mj")


def unimodal_values(score: BackboneScore) -> tuple[Any, ...]:
    """A backbone's score in the order of :data:`UNIMODAL_FIELDS`."""
    return score.val_metric, score.cost.latency_ms, score.cost.energy_mj


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
        individual, fusion = record.individual, record.fusion
        unimodal = [v for m in modalities for v in unimodal_values(record.unimodal[m])]
        mm = (
            [
                True,
                fusion.val_metric,
                fusion.cost.latency_ms,
                fusion.cost.energy_mj,
                record.id in on_front,
                round(fusion.seconds, 2),
            ]
            if fusion
            else [False, "", "", "", False, ""]
        )
        genotype = fusion.architecture.genotype if fusion else None
        writer.writerow(
            [
                record.id,
                record.generation,
                individual.cells,
                individual.nodes,
                metric,
                *unimodal,
                *mm,
                json.dumps(individual.to_dict()["backbones"], sort_keys=True),
                json.dumps(genotype.to_dict()) if genotype else "",
            ]
        )
    return buffer.getvalue()
