"""Scoring candidates: backbones alone (stage 1) and whole multimodal networks (stage 2).

An :class:`Evaluator` holds what every score needs: the trained supernets, the dataset splits as
tensors, the LUT. It is built from a picklable :class:`SearchInputs`, so that a worker process can
build its own (see :mod:`hnas_edge.search.executor`).

Stage 2 of one candidate (:meth:`Evaluator.fuse`): extract its backbones (batch norm
recalibrated), compute every fusion candidate feature once, run DARTS over the relaxed fusion
network on those cached features, derive the genotype, fine-tune the discrete fusion network
briefly, score it on validation (the task's metric) and price it with the LUT. Its fusion
weights (adapters, fusion network, head) come back with the result and the search saves them
beside it, so that the front's models can be rebuilt exactly. A worker may take a backbone and
its features from the driver (:meth:`Evaluator.adopt`) instead of computing them; the result is
the same.

Every evaluator computes on one device (``SearchInputs.accelerator``, resolved in its own
process): the supernets, the split tensors, the extracted backbones and every cached candidate
feature live there, and each DARTS and fine-tune step runs there. Networks are initialised on the
CPU and moved, batch orders drawn on the CPU, so the CPU path is bit-identical whatever the
accelerator code. What crosses processes (shared backbones, a candidate's fusion weights) travels
as CPU tensors; on CUDA a candidate's record holds the peak GPU memory its stage 2 took.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hnas_edge.accelerator import (
    configure,
    peak_memory_bytes,
    reset_peak_memory,
    resolve,
    to_cpu,
)
from hnas_edge.data import load_dataset, metric_of
from hnas_edge.profiling.cost import CostBreakdown, predict
from hnas_edge.profiling.coverage import default_accounting
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.config import SearchConfig
from hnas_edge.search.darts import FusionSupernet, OperatorCosts, search_fusion
from hnas_edge.search.evolution import Individual
from hnas_edge.space.fusion import CellGene, Genotype, NodeGene
from hnas_edge.space.mmnn import MultimodalArch, MultimodalNet, arch_parts, candidates
from hnas_edge.space.presets import SpacePreset
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.torch_state import seeded
from hnas_edge.train import checkpoint
from hnas_edge.train.batches import ModalityData, modality_tensors
from hnas_edge.train.evaluation import recalibrate_bn, task_metric
from hnas_edge.train.fused import fit_fusion, fusion_state, metric_on_features
from hnas_edge.train.loop import load_supernets, supernet_files, trained_preset
from hnas_edge.train.scorer import SubnetScorer

SPLITS = ("train", "val", "test")
STAGE2_SPLITS = ("train", "val")  # what stage 2 reads; test is touched once, at the end


@dataclass(frozen=True)
class SearchInputs:
    """Where a search reads from: enough for any process to rebuild its :class:`Evaluator`."""

    supernets: Path
    dataset: str
    data_dir: str | None
    lut: Path
    config: SearchConfig
    out: Path
    accelerator: str = "cpu"  # auto, cpu or cuda: resolved by each process that evaluates
    deterministic: bool = False  # on CUDA: reproducible algorithms instead of the fastest


@dataclass(frozen=True)
class FusionJob:
    individual: Individual
    id: str
    seed: int


def config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def individual_id(individual: Individual) -> str:
    """A short stable name: the same architecture always gets the same id."""
    text = json.dumps(individual.to_dict(), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def late_fusion(preset: SpacePreset) -> Genotype:
    """The fixed fusion of the ablation (and the classic hand-made choice): one cell, one
    ``ConcatFC`` node over the embeddings (last features) of the first two modalities."""
    pool = candidates(preset)
    last = {m: len(space.feature_shapes()) - 1 for m, space in preset.backbones}
    first, second = [i for i, c in enumerate(pool) if c.index == last[c.modality]][:2]
    return Genotype(len(pool), (CellGene((first, second), (NodeGene((0, 1), "ConcatFC"),)),))


def cost_record(cost: CostBreakdown) -> dict[str, Any]:
    return {
        "latency_ms": cost.latency_ms,
        "energy_mj": cost.energy_mj,
        "calibrated": cost.calibrated,
        "energy_is_estimate": cost.energy_is_estimate,
    }


class Evaluator:
    def __init__(self, inputs: SearchInputs, feature_cache: int = 8) -> None:
        self.inputs = inputs
        self.config = inputs.config
        self.mode = inputs.config.run_mode
        self.device = resolve(inputs.accelerator)
        configure(self.device, inputs.deterministic)
        self.preset = trained_preset(inputs.supernets)
        self.supernets = load_supernets(inputs.supernets, self.device)
        self.lut = Lut.load(inputs.lut)
        self.accounting = inputs.config.accounting or default_accounting(self.lut)
        self.op_costs = OperatorCosts.from_lut(self.lut, self.preset.fusion_C, self.preset.fusion_L)
        self._splits = {s: load_dataset(inputs.dataset, inputs.data_dir, split=s) for s in SPLITS}
        # the supernets' space, not the dataset's: refuses supernets of another space as well
        check_dataset_shapes(self.preset, self._splits["train"])
        self.task = self._splits["train"].task
        self.metric = metric_of(self.task)  # what every score below is
        self.labels = {
            s: d.targets[: self.config.limit].to(self.device) for s, d in self._splits.items()
        }
        self._tensors: dict[tuple[str, str], torch.Tensor] = {}
        self._scorers: dict[str, SubnetScorer] = {}
        self._modules: OrderedDict[tuple[str, str], nn.Module] = OrderedDict()
        self._features: OrderedDict[tuple[str, str, str], list[torch.Tensor]] = OrderedDict()
        self._cache_size = feature_cache

    def tensors(self, modality: str, split: str) -> torch.Tensor:
        """One modality's inputs of ``split`` on this evaluator's device (gathered once)."""
        key = (modality, split)
        if key not in self._tensors:
            x = modality_tensors(self._splits[split], modality, self.config.limit)[0]
            self._tensors[key] = x.to(self.device)
        return self._tensors[key]

    def fixed_config(self, modality: str) -> dict[str, Any]:
        """The hand-picked backbone of the ablation: the supernet's largest subnet."""
        return self.preset.backbone(modality).max_config()

    def backbone_score(self, modality: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 1: validation metric of a backbone alone, and its cost whole (classifier
        included: the unimodal network), from the LUT."""
        if modality not in self._scorers:
            data = ModalityData(
                (self.tensors(modality, "train"), self.labels["train"]),
                (self.tensors(modality, "val"), self.labels["val"]),
                self.task,
            )
            self._scorers[modality] = SubnetScorer(
                self.supernets[modality], data, bn_batches=self.config.bn_batches
            )
        return {
            "val_metric": self._scorers[modality].score(config),
            **self.backbone_cost(modality, config),
        }

    def backbone_cost(self, modality: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """A backbone priced whole, classifier included, as a unimodal network. Under the
        paper's accounting a fixed (non-searchable) backbone is not priced: its tables hold
        none, and it is the same in every architecture."""
        if self.accounting == "paper" and modality not in dict(self.preset.elastic_backbones()):
            return {"latency_ms": 0.0, "energy_mj": 0.0, "calibrated": False, "priced": False}
        parts = self.preset.backbone(modality).parts(config)
        cost = predict(self.lut, [(f"{modality}.{n}", s) for n, s in parts])
        return cost_record(cost)

    def backbone(self, modality: str, config: Mapping[str, Any]) -> nn.Module:
        """The static backbone ``config`` with batch norm recalibrated for it (cached)."""
        key = (modality, config_key(config))
        if key not in self._modules:
            net = self.supernets[modality]
            if net.space.elastic:
                net.set_active(config)
                recalibrate_bn(net, self.tensors(modality, "train"), 64, self.config.bn_batches)
                net = net.extract(config).to(self.device)
            self._modules[key] = net.eval()
            _trim(self._modules, self._cache_size)
        return self._modules[key]

    def features(self, backbones: Mapping[str, Any], split: str) -> list[torch.Tensor]:
        """Every fusion candidate feature of ``split`` in pool order (cached per backbone)."""
        pool: list[torch.Tensor] = []
        for modality, _ in self.preset.backbones:
            pool += self.backbone_features(modality, backbones[modality], split)
        return pool

    @torch.no_grad()
    def backbone_features(
        self, modality: str, config: Mapping[str, Any], split: str
    ) -> list[torch.Tensor]:
        key = (modality, config_key(config), split)
        if key not in self._features:
            module = self.backbone(modality, config)
            x = self.tensors(modality, split)
            chunks = [module.forward_features(x[i : i + 256]) for i in range(0, len(x), 256)]
            self._features[key] = [torch.cat(f) for f in zip(*chunks, strict=True)]
            _trim(self._features, self._cache_size * len(SPLITS))
        return self._features[key]

    # --- sharing with workers (the Ray executor puts these in its object store once) -----------

    def shares(self, job: FusionJob) -> dict[str, Callable[[], dict[str, Any]]]:
        """What stage 2 of ``job`` needs that other candidates with the same backbone need too:
        per backbone, the extracted module and its train/val features."""
        return {
            f"backbone:{m}:{config_key(c)}": partial(self.shared_backbone, m, c)
            for m, c in job.individual.backbones.items()
        }

    def shared_backbone(self, modality: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """On the CPU whatever this evaluator's device: a worker may have another (or none)."""
        module = self.backbone(modality, config)
        if self.device.type != "cpu":
            module = copy.deepcopy(module).cpu()
        features = {s: self.backbone_features(modality, config, s) for s in STAGE2_SPLITS}
        return {
            "modality": modality,
            "config": dict(config),
            "module": module,
            "features": to_cpu(features),
        }

    def adopt(self, shared: Mapping[str, Mapping[str, Any]]) -> None:
        """Take backbones and features computed elsewhere instead of computing them here."""
        for value in shared.values():
            key = config_key(value["config"])
            self._modules[(value["modality"], key)] = value["module"].to(self.device).eval()
            _trim(self._modules, self._cache_size)
            for split, features in value["features"].items():
                on_device = all(f.device == self.device for f in features)
                # on the CPU the driver's own list is kept: shared, not copied
                self._features[(value["modality"], key, split)] = (
                    features if on_device else [f.to(self.device) for f in features]
                )
                _trim(self._features, self._cache_size * len(SPLITS))

    def network(self, arch: MultimodalArch) -> MultimodalNet:
        backbones = {m: self.backbone(m, arch.backbones[m]) for m in self.preset.modalities}
        # adapters, fusion and head initialised on the CPU (the same on every device), then moved
        return MultimodalNet(self.preset, arch, backbones).to(self.device)

    def fuse(self, job: FusionJob) -> dict[str, Any]:
        """Stage 2 of one candidate: its record, with its fusion weights under ``weights``."""
        start = time.perf_counter()
        reset_peak_memory(self.device)
        individual = job.individual
        train = self.features(individual.backbones, "train")
        val = self.features(individual.backbones, "val")
        # weights drawn from job.seed after the features: a result must not depend on whether
        # they were cached
        seconds = {"features": time.perf_counter() - start}
        history: list[dict[str, float]] = []
        supernet = None
        if self.mode.search_fusion:
            darts = replace(self.config.darts, seed=job.seed)
            if not self.mode.hardware:
                darts = replace(darts, hw_weight=0.0)
            with seeded(job.seed):
                supernet = FusionSupernet.of(
                    self.preset, individual.cells, individual.nodes, darts.operators
                ).to(self.device)
            genotype, history = search_fusion(
                supernet,
                (train, self.labels["train"]),
                (val, self.labels["val"]),
                self.task,
                self.op_costs,
                darts,
            )
        else:
            genotype = late_fusion(self.preset)
        seconds["darts"] = time.perf_counter() - start - seconds["features"]
        cells, nodes = len(genotype.cells), genotype.n_nodes
        arch = MultimodalArch(self.preset.name, individual.backbones, cells, nodes, genotype)
        with seeded(job.seed):  # drawn afresh, as after DARTS (seeded by job.seed too) or none
            net = self.network(arch)
        if supernet is not None:
            supernet.hand_down(net)
        losses = fit_fusion(
            net,
            {i: train[i] for i in net.used},
            self.labels["train"],
            self.fusion_epochs(),
            self.task,
            seed=job.seed,
            val=({i: val[i] for i in net.used}, self.labels["val"]),
        )
        seconds["finetune"] = time.perf_counter() - start - sum(seconds.values())
        val_metric = metric_on_features(
            net, {i: val[i] for i in net.used}, self.labels["val"], self.task
        )
        cost = predict(self.lut, arch_parts(self.preset, arch, self.accounting))
        record = {
            # the caller saves them: workers may be elsewhere, without this device
            "weights": to_cpu(fusion_state(net)),
            "architecture": arch.to_dict(),
            "val_metric": val_metric,
            **cost_record(cost),
            "darts": history,
            "finetune_losses": losses,
            "seconds": time.perf_counter() - start,
            "seconds_by_step": seconds,
        }
        peak = peak_memory_bytes(self.device)
        if peak is not None:  # this process's peak, its cached features included
            record["gpu"] = {
                "device": str(self.device),
                "name": torch.cuda.get_device_name(self.device),
                "peak_memory_mb": round(peak / 2**20, 1),
            }
        return record

    def fusion_epochs(self) -> int:
        """Epochs of the derived network's fine-tune. A fixed fusion has no DARTS to start from,
        so it trains the DARTS epochs too: every mode gives its fusion weights the same number of
        passes over the training split, and the ablation compares architectures, not budgets."""
        extra = 0 if self.mode.search_fusion else self.config.darts.epochs
        return self.config.finetune_epochs + extra

    def restore(self, arch: MultimodalArch, candidate_id: str) -> MultimodalNet:
        """The network stage 2 produced for ``candidate_id``: backbones re-extracted (the same
        recalibration, so the same weights) plus its saved fusion weights."""
        net = self.network(arch)
        state = checkpoint.load(candidate_weights(self.inputs.out, candidate_id))
        net.load_state_dict({**net.state_dict(), **state})
        return net.eval()

    @torch.no_grad()
    def test_metric(self, net: MultimodalNet) -> float:
        test = self.features(net.arch.backbones, "test")
        return metric_on_features(
            net, {i: test[i] for i in net.used}, self.labels["test"], self.task
        )

    def backbone_test_metric(self, modality: str, config: Mapping[str, Any]) -> float:
        module = self.backbone(modality, config)
        return task_metric(module, self.tensors(modality, "test"), self.labels["test"], self.task)


def candidate_weights(out: Path, candidate_id: str) -> Path:
    return out / "candidates" / f"{candidate_id}.pt"


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


_CURRENT: Evaluator | None = None


def install(evaluator: Evaluator) -> None:
    """Make ``evaluator`` the one :func:`run_fusion_job` uses in this process."""
    global _CURRENT
    _CURRENT = evaluator


def build_and_install(inputs: SearchInputs) -> None:
    """Worker initializer: each process builds its own evaluator once."""
    install(Evaluator(inputs))


def pack_inputs(inputs: SearchInputs) -> dict[str, bytes]:
    """The files an evaluator reads (supernets, LUT), for workers on machines without them.
    An on-disk dataset (``data_dir``) is not packed: it must be at the same path there."""
    root = inputs.supernets
    files = {f"supernets/{p.relative_to(root)}": p for p in supernet_files(root)}
    files["lut.json"] = inputs.lut
    return {name: path.read_bytes() for name, path in files.items()}


def build_from_packed(inputs: SearchInputs, files: Mapping[str, bytes]) -> None:
    """Worker initializer for other machines: unpack the files into a private folder of this
    process, then build the evaluator from there."""
    folder = Path(tempfile.mkdtemp(prefix="hnas-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    install(Evaluator(replace(inputs, supernets=folder / "supernets", lut=folder / "lut.json")))


def run_fusion_job(
    job: FusionJob, shared: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[str, dict[str, Any]]:
    """Stage 2 of ``job`` with this process's evaluator; ``shared``: its backbones and features
    as the driver computed them (the Ray executor), so that this worker does not."""
    if _CURRENT is None:
        raise RuntimeError("no evaluator installed in this process")
    if shared:
        _CURRENT.adopt(shared)
    return job.id, _CURRENT.fuse(job)
