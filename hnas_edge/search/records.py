"""What a search records, typed: a backbone's stage-1 score, a candidate's stage-2 result, the
record of one candidate, the hypervolume of a generation, and the result of the whole search.

The search works on these records only. They become plain dicts where they are written or read
(``state.json``, ``front.json``, ``candidates.csv``), through ``to_dict`` / ``from_dict``, with
the keys, the order of the keys and the values those files have always had: a state written
before this module resumes, and a state read and written back is the same text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from hnas_edge.profiling.cost import CostBreakdown
from hnas_edge.search.evolution import Individual
from hnas_edge.space.mmnn import MultimodalArch


def config_key(config: Mapping[str, Any]) -> str:
    """A backbone config as canonical JSON (sorted keys): equal configs, equal text."""
    return json.dumps(config, sort_keys=True)


def individual_id(individual: Individual) -> str:
    """A short stable name: the same architecture always gets the same id."""
    text = json.dumps(individual.to_dict(), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, order=True)
class BackboneKey:
    """One backbone of one modality: what a stage-1 score is of. In ``state.json`` it is the
    text ``"modality:config_json"`` (:attr:`text`, :meth:`parse`)."""

    modality: str
    config_json: str  # config_key of the config

    @classmethod
    def of(cls, modality: str, config: Mapping[str, Any]) -> BackboneKey:
        return cls(modality, config_key(config))

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def text(self) -> str:
        return f"{self.modality}:{self.config_json}"

    @classmethod
    def parse(cls, text: str) -> BackboneKey:
        modality, config_json = text.split(":", 1)
        return cls(modality, config_json)


def plain(value: Any) -> Any:
    """``value`` as JSON types: a record (anything with ``to_dict``) as its dict, a tuple or a
    list as a list, a mapping as a dict, each item likewise."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


class Record:
    """A dataclass whose dict is its fields, in their order, each as JSON types (:func:`plain`).
    A record whose fields are JSON types already is read back by :meth:`from_dict` as it is;
    the others read their nested records themselves."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        return cls(**data)


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Cost:
    """A cost predicted from the LUT. ``priced`` False: a fixed backbone the paper's accounting
    leaves out (its tables hold none; it is the same in every architecture), recorded as zero."""

    latency_ms: float
    energy_mj: float | None
    calibrated: bool
    energy_is_estimate: bool = False
    priced: bool = True

    @classmethod
    def of(cls, cost: CostBreakdown) -> Cost:
        return cls(cost.latency_ms, cost.energy_mj, cost.calibrated, cost.energy_is_estimate)

    @classmethod
    def unpriced(cls) -> Cost:
        return cls(0.0, 0.0, calibrated=False, priced=False)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "latency_ms": self.latency_ms,
            "energy_mj": self.energy_mj,
            "calibrated": self.calibrated,
        }
        if self.priced:
            record["energy_is_estimate"] = self.energy_is_estimate
        else:
            record["priced"] = False
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        return cls(
            data["latency_ms"],
            data["energy_mj"],
            data["calibrated"],
            data.get("energy_is_estimate", False),
            data.get("priced", True),
        )


@dataclass(frozen=True)
class BackboneScore:
    """Stage 1: a backbone alone, its validation metric (the task's) and its cost whole
    (classifier included: the unimodal network)."""

    val_metric: float
    cost: Cost

    def to_dict(self) -> dict[str, Any]:
        return {"val_metric": self.val_metric, **self.cost.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackboneScore:
        return cls(data["val_metric"], Cost.from_dict(data))


@dataclass(frozen=True)
class GpuUse(Record):
    """On CUDA: the device a candidate's stage 2 ran on and the peak memory of that process
    during it (its cached features included)."""

    device: str
    name: str
    peak_memory_mb: float


@dataclass(frozen=True)
class FusionResult:
    """Stage 2 of one candidate in ``generation``: the derived architecture, its validation
    metric and cost as a whole multimodal network, the DARTS history, the fine-tune losses and
    where the time went. Its fusion weights are saved beside the state, not in it."""

    generation: int
    architecture: MultimodalArch
    val_metric: float
    cost: Cost
    darts: tuple[dict[str, float], ...]
    finetune_losses: tuple[float, ...]
    seconds: float
    seconds_by_step: Mapping[str, float]
    gpu: GpuUse | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {
            "generation": self.generation,
            "architecture": self.architecture.to_dict(),
            "val_metric": self.val_metric,
            **self.cost.to_dict(),
            "darts": list(self.darts),
            "finetune_losses": list(self.finetune_losses),
            "seconds": self.seconds,
            "seconds_by_step": dict(self.seconds_by_step),
        }
        if self.gpu is not None:
            record["gpu"] = self.gpu.to_dict()
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FusionResult:
        gpu = data.get("gpu")
        return cls(
            generation=data["generation"],
            architecture=MultimodalArch.from_dict(data["architecture"]),
            val_metric=data["val_metric"],
            cost=Cost.from_dict(data),
            darts=tuple(data["darts"]),
            finetune_losses=tuple(data["finetune_losses"]),
            seconds=data["seconds"],
            seconds_by_step=dict(data["seconds_by_step"]),
            gpu=GpuUse.from_dict(gpu) if gpu is not None else None,
        )


@dataclass(frozen=True)
class CandidateRecord(Record):
    """One individual the search met: its backbones' stage-1 scores (per modality) and, once
    fused, its stage-2 result."""

    id: str
    generation: int  # the generation that first scored it
    individual: Individual
    unimodal: Mapping[str, BackboneScore]
    fusion: FusionResult | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateRecord:
        fusion = data["fusion"]
        return cls(
            id=data["id"],
            generation=data["generation"],
            individual=Individual.from_dict(data["individual"]),
            unimodal={m: BackboneScore.from_dict(s) for m, s in data["unimodal"].items()},
            fusion=FusionResult.from_dict(fusion) if fusion is not None else None,
        )


@dataclass(frozen=True)
class HypervolumePoint(Record):
    """The multimodal front after one generation (1-based): its normalised hypervolume, the
    candidates fused so far and in that generation."""

    generation: int
    hypervolume: float
    fused: int
    fused_new: int


@dataclass(frozen=True)
class FrontModel(Record):
    """A model of the front: its architecture, validation and test metric, predicted cost, the
    generation that fused it and its whole checkpoint (relative to the result folder)."""

    id: str
    architecture: MultimodalArch
    val_metric: float
    test_metric: float
    latency_ms: float
    energy_mj: float | None
    generation: int
    checkpoint: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontModel:
        return cls(
            data["id"],
            MultimodalArch.from_dict(data["architecture"]),
            data["val_metric"],
            data["test_metric"],
            data["latency_ms"],
            data["energy_mj"],
            data["generation"],
            data["checkpoint"],
        )


@dataclass(frozen=True)
class BestUnimodal:
    """The backbone of one modality with the best validation metric seen, with its test one."""

    config: Mapping[str, Any]
    score: BackboneScore
    test_metric: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dict(self.config),
            **self.score.to_dict(),
            "test_metric": self.test_metric,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BestUnimodal:
        return cls(data["config"], BackboneScore.from_dict(data), data["test_metric"])


@dataclass(frozen=True)
class Evaluated(Record):
    """How many candidates each stage evaluated."""

    stage1: int
    stage2: int


@dataclass(frozen=True)
class SearchResult(Record):
    """What ``front.json`` holds: the inputs searched, the front, the best backbone of each
    modality alone, the hypervolume per generation, how many candidates each stage evaluated,
    the time, and what the search ran on."""

    dataset: str
    data_dir: str | None
    samples_limit: int | None
    preset: str
    mode: str
    metric: str  # the task's: what every val_metric and test_metric is
    lut: Mapping[str, Any]  # the LUT's identity (results.lut_identity)
    supernets: str
    models: tuple[FrontModel, ...]
    best_unimodal: Mapping[str, BestUnimodal]
    hypervolume: tuple[HypervolumePoint, ...]
    hypervolume_reference: Sequence[float] | None
    evaluated: Evaluated
    seconds: Mapping[str, float]
    executor: Mapping[str, Any]
    accelerator: Mapping[str, Any]
    provenance: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        return cls(
            dataset=data["dataset"],
            data_dir=data["data_dir"],
            samples_limit=data["samples_limit"],
            preset=data["preset"],
            mode=data["mode"],
            metric=data["metric"],
            lut=data["lut"],
            supernets=data["supernets"],
            models=tuple(FrontModel.from_dict(m) for m in data["models"]),
            best_unimodal={m: BestUnimodal.from_dict(b) for m, b in data["best_unimodal"].items()},
            hypervolume=tuple(HypervolumePoint.from_dict(h) for h in data["hypervolume"]),
            hypervolume_reference=data["hypervolume_reference"],
            evaluated=Evaluated.from_dict(data["evaluated"]),
            seconds=data["seconds"],
            executor=data["executor"],
            accelerator=data["accelerator"],
            provenance=data["provenance"],
        )
