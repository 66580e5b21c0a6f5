"""Scoring candidates: backbones alone (stage 1) and whole multimodal networks (stage 2), as plain
functions of a process's :class:`~hnas_edge.search.context.SearchContext` (supernets, splits,
LUT, device) and its :class:`~hnas_edge.search.cache.BackboneCache`.

Stage 2 of one candidate (:func:`fuse_candidate`): fetch its backbones' features (cached, or
taken from the driver on Ray), run DARTS over the relaxed fusion network on those features,
derive the genotype, fine-tune the discrete fusion network briefly, score it on validation (the
task's metric) and price it with the LUT. Its fusion weights come back with the result and the
search saves them beside it, so that the front's models can be rebuilt exactly
(:func:`restore`).

Each DARTS and fine-tune step runs on the context's device. Networks are initialised on the CPU
and moved, batch orders drawn on the CPU, so the CPU path is bit-identical whatever the
accelerator code. A candidate's fusion weights travel back as CPU tensors; on CUDA its result
holds the peak GPU memory its stage 2 took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hnas_edge.accelerator import peak_memory_bytes, reset_peak_memory, to_cpu
from hnas_edge.profiling.cost import predict
from hnas_edge.search.cache import BackboneCache, SharedBackbone
from hnas_edge.search.context import SearchContext, SearchInputs, unpack_inputs
from hnas_edge.search.darts import FusionSupernet, search_fusion
from hnas_edge.search.evolution import Individual
from hnas_edge.search.records import BackboneScore, Cost, FusionResult, GpuUse
from hnas_edge.space.fusion import CellGene, Genotype, NodeGene
from hnas_edge.space.mmnn import MultimodalArch, MultimodalNet, arch_parts, candidates
from hnas_edge.space.presets import SpacePreset
from hnas_edge.torch_state import seeded
from hnas_edge.train import checkpoint
from hnas_edge.train.evaluation import task_metric
from hnas_edge.train.fused import fit_fusion, fusion_state, metric_on_features


@dataclass(frozen=True)
class FusionJob:
    """Stage 2 of one candidate in ``generation``, seeded with ``seed``: a picklable value."""

    individual: Individual
    id: str
    seed: int
    generation: int


@dataclass(frozen=True)
class FusionOutcome:
    """What stage 2 of a job sends back: its result and its fusion weights (on the CPU: the
    driver saves them; workers may be elsewhere, without this device)."""

    id: str
    result: FusionResult
    weights: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Worker:
    """What one process evaluates with: its context and its backbone cache. The driver has one;
    so has each worker process of an executor (built there by :func:`open_worker`)."""

    context: SearchContext
    cache: BackboneCache

    def shares(self, job: FusionJob) -> dict[str, Callable[[], SharedBackbone]]:
        """What the Ray executor computes once here and hands to every job that names it."""
        return self.cache.shares(self.context, job.individual.backbones)


def open_worker(inputs: SearchInputs) -> Worker:
    """A process's worker, built from the files ``inputs`` names (an executor's initializer)."""
    return Worker(SearchContext(inputs), BackboneCache())


def open_packed_worker(inputs: SearchInputs, files: Mapping[str, bytes]) -> Worker:
    """The initializer for other machines: the supernets and LUT came as bytes."""
    return open_worker(unpack_inputs(inputs, files))


def late_fusion(preset: SpacePreset) -> Genotype:
    """The fixed fusion of the ablation (and the classic hand-made choice): one cell, one
    ``ConcatFC`` node over the embeddings (last features) of the first two modalities."""
    pool = candidates(preset)
    last = {m: len(space.feature_shapes()) - 1 for m, space in preset.backbones}
    first, second = [i for i, c in enumerate(pool) if c.index == last[c.modality]][:2]
    return Genotype(len(pool), (CellGene((first, second), (NodeGene((0, 1), "ConcatFC"),)),))


def score_backbone(
    context: SearchContext, modality: str, config: Mapping[str, Any]
) -> BackboneScore:
    """Stage 1: validation metric of a backbone alone, and its cost whole (classifier
    included: the unimodal network), from the LUT."""
    return BackboneScore(
        context.scorer(modality).score(config), backbone_cost(context, modality, config)
    )


def backbone_cost(context: SearchContext, modality: str, config: Mapping[str, Any]) -> Cost:
    """A backbone priced whole, classifier included, as a unimodal network. Under the
    paper's accounting a fixed (non-searchable) backbone is not priced: its tables hold
    none, and it is the same in every architecture."""
    preset = context.preset
    if context.accounting == "paper" and modality not in dict(preset.elastic_backbones()):
        return Cost.unpriced()
    parts = preset.backbone(modality).parts(config)
    return Cost.of(predict(context.lut, [(f"{modality}.{n}", s) for n, s in parts]))


def network(context: SearchContext, cache: BackboneCache, arch: MultimodalArch) -> MultimodalNet:
    """``arch`` on the cached backbones; adapters, fusion and head initialised on the CPU (the
    same on every device), then moved to the context's device."""
    backbones = {
        m: cache.backbone(context, m, arch.backbones[m]) for m in context.preset.modalities
    }
    return MultimodalNet(context.preset, arch, backbones).to(context.device)


def fusion_epochs(context: SearchContext) -> int:
    """Epochs of the derived network's fine-tune. A fixed fusion has no DARTS to start from,
    so it trains the DARTS epochs too: every mode gives its fusion weights the same number of
    passes over the training split, and the ablation compares architectures, not budgets."""
    extra = 0 if context.mode.search_fusion else context.config.darts.epochs
    return context.config.finetune_epochs + extra


def fuse_candidate(context: SearchContext, cache: BackboneCache, job: FusionJob) -> FusionOutcome:
    """Stage 2 of one candidate."""
    start = time.perf_counter()
    device, preset, config, labels = context.device, context.preset, context.config, context.labels
    reset_peak_memory(device)
    individual = job.individual
    train = cache.features(context, individual.backbones, "train")
    val = cache.features(context, individual.backbones, "val")
    # weights drawn from job.seed after the features: a result must not depend on whether
    # they were cached
    seconds = {"features": time.perf_counter() - start}
    history: list[dict[str, float]] = []
    supernet = None
    if context.mode.search_fusion:
        darts = replace(config.darts, seed=job.seed)
        if not context.mode.hardware:
            darts = replace(darts, hw_weight=0.0)
        with seeded(job.seed):
            supernet = FusionSupernet.of(
                preset, individual.cells, individual.nodes, darts.operators
            ).to(device)
        genotype, history = search_fusion(
            supernet,
            (train, labels["train"]),
            (val, labels["val"]),
            context.task,
            context.op_costs,
            darts,
            context.precision,
        )
    else:
        genotype = late_fusion(preset)
    seconds["darts"] = time.perf_counter() - start - seconds["features"]
    cells, nodes = len(genotype.cells), genotype.n_nodes
    arch = MultimodalArch(preset.name, individual.backbones, cells, nodes, genotype)
    with seeded(job.seed):  # drawn afresh, as after DARTS (seeded by job.seed too) or none
        net = network(context, cache, arch)
    if supernet is not None:
        supernet.hand_down(net)
    losses = fit_fusion(
        net,
        {i: train[i] for i in net.used},
        labels["train"],
        fusion_epochs(context),
        context.task,
        seed=job.seed,
        val=({i: val[i] for i in net.used}, labels["val"]),
        precision=context.precision,
    )
    seconds["finetune"] = time.perf_counter() - start - sum(seconds.values())
    val_metric = metric_on_features(
        net, {i: val[i] for i in net.used}, labels["val"], context.task, context.precision
    )
    cost = predict(context.lut, arch_parts(preset, arch, context.accounting))
    weights = to_cpu(fusion_state(net))
    result = FusionResult(
        generation=job.generation,
        architecture=arch,
        val_metric=val_metric,
        cost=Cost.of(cost),
        darts=tuple(history),
        finetune_losses=tuple(losses),
        seconds=time.perf_counter() - start,
        seconds_by_step=seconds,
        gpu=gpu_use(device),
    )
    return FusionOutcome(job.id, result, weights)


def gpu_use(device: torch.device) -> GpuUse | None:
    """On CUDA, this process's peak memory since the last reset (its cached features included)."""
    peak = peak_memory_bytes(device)
    if peak is None:
        return None
    return GpuUse(str(device), torch.cuda.get_device_name(device), round(peak / 2**20, 1))


def run_fusion_job(
    worker: Worker, job: FusionJob, shared: Mapping[str, SharedBackbone] | None = None
) -> FusionOutcome:
    """Stage 2 of ``job`` with this process's worker; ``shared``: its backbones and features
    as the driver computed them (the Ray executor), so that this worker does not."""
    if shared:
        worker.cache.adopt(worker.context.device, shared)
    return fuse_candidate(worker.context, worker.cache, job)


def candidate_weights(out: Path, candidate_id: str) -> Path:
    return out / "candidates" / f"{candidate_id}.pt"


def restore(
    context: SearchContext, cache: BackboneCache, arch: MultimodalArch, candidate_id: str
) -> MultimodalNet:
    """The network stage 2 produced for ``candidate_id``: backbones re-extracted (the same
    recalibration, so the same weights) plus its saved fusion weights."""
    net = network(context, cache, arch)
    state = checkpoint.load(candidate_weights(context.inputs.out, candidate_id))
    net.load_state_dict({**net.state_dict(), **state})
    return net.eval()


@torch.no_grad()
def network_test_metric(context: SearchContext, cache: BackboneCache, net: MultimodalNet) -> float:
    """A whole network's metric on the test split (the front's, once, at the end), in the
    search's precision (``hnas deploy --split test`` scores the exported fp32 network)."""
    test = cache.features(context, net.arch.backbones, "test")
    return metric_on_features(
        net, {i: test[i] for i in net.used}, context.labels["test"], context.task, context.precision
    )


def backbone_test_metric(
    context: SearchContext, cache: BackboneCache, modality: str, config: Mapping[str, Any]
) -> float:
    """A backbone's metric alone on the test split."""
    module: nn.Module = cache.backbone(context, modality, config)
    x = context.tensors(modality, "test")
    with context.precision.autocast():
        return task_metric(module, x, context.labels["test"], context.task)
