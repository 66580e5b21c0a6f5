"""The two-tier search loop: generations of stage 1 (backbones, NSGA-II order on error, latency,
energy) feeding stage 2 (DARTS fusion search of the top quartile), elites chosen by their
multimodal result.

One generation:

1. score every new individual's backbones alone (validation error after BN recalibration; cost
   of each unimodal network from the LUT); rank the population by (mean error, summed latency,
   summed energy);
2. run stage 2 (through the executor) on the best round(``quartile`` × population) individuals
   of that ranking that were not fused before: every generation spends the paper's stage-2
   budget on new candidates (fewer only when the population holds fewer new ones, which the
   progress says), instead of re-ranking elites that were fused already;
3. choose the elites, the best half of that budget (the paper: 16 of 128), among every fused
   candidate so far by (error, latency, energy) of the whole multimodal network; breed the next
   population from them (crossover, then mutation; C and D are genes like any other);
4. record the hypervolume of the multimodal front and how many candidates were fused, and save
   the state.

The state (``OUT/state.json``) is written atomically after each generation and after each
stage-2 candidate that finishes (in whatever order the executor returns them), so a killed
search resumes in the generation it was in, without repeating a finished candidate. Every random
draw comes from one seeded generator whose state is saved with it, and stage 2 of a candidate is
seeded by its id, so a resumed search ends with the same front as an uninterrupted one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.accelerator import Compute
from hnas_edge.checks import shown
from hnas_edge.data.metrics import LABELS
from hnas_edge.errors import HnasError
from hnas_edge.io import atomic_write_json, file_digest, provenance, read_json
from hnas_edge.outputs import claim_output
from hnas_edge.search.config import Mode, SearchConfig
from hnas_edge.search.context import SearchInputs, pack_inputs
from hnas_edge.search.evaluate import (
    FusionJob,
    Worker,
    candidate_weights,
    open_packed_worker,
    open_worker,
    run_fusion_job,
    score_backbone,
)
from hnas_edge.search.evolution import (
    Individual,
    crossover,
    hypervolume,
    mutate,
    pareto_order,
    random_individual,
)
from hnas_edge.search.executor import Executor, InProcess, LocalPool, RayOptions, RayPool
from hnas_edge.search.records import (
    BackboneKey,
    BackboneScore,
    CandidateRecord,
    FusionResult,
    HypervolumePoint,
    individual_id,
)
from hnas_edge.space.presets import SpacePreset
from hnas_edge.train import checkpoint
from hnas_edge.train.checkpoint import python_rng_state, set_python_rng_state
from hnas_edge.train.loop import supernet_files

STATE_FILE = "state.json"
FORMAT = 3  # 2: scores are the task's metric (val_metric); hypervolume records count fused_new
# 3: the state records its inputs (LUT, supernets, dataset), which a resume must not change


class SearchProgress:
    """What the loop reports; the CLI draws bars from it. Does nothing by default."""

    def generation(self, done: int, total: int, detail: str = "") -> None:
        pass

    def candidates(self, done: int, total: int, detail: str = "") -> None:
        pass

    def note(self, text: str) -> None:
        """Something the user should know about this run (printed above the bars)."""


@dataclass
class SearchState:
    """Where a search is: the generation, its population and random state, every candidate met
    (by id) and every backbone scored. In ``state.json`` as :meth:`to_dict` writes it."""

    generation: int
    population: list[Individual]
    rng: list[Any]
    records: dict[str, CandidateRecord]
    backbone_scores: dict[BackboneKey, BackboneScore]
    hypervolume: list[HypervolumePoint]
    reference: list[float] | None
    seconds: dict[str, float]
    inputs: dict[str, Any] = field(default_factory=dict)  # what was searched: see input_record

    def to_dict(self, config: SearchConfig) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "settings": config.to_dict(),
            "inputs": self.inputs,
            "generation": self.generation,
            "population": [ind.to_dict() for ind in self.population],
            "rng": self.rng,
            "records": {i: r.to_dict() for i, r in self.records.items()},
            "backbone_scores": {k.text: s.to_dict() for k, s in self.backbone_scores.items()},
            "hypervolume": [h.to_dict() for h in self.hypervolume],
            "reference": self.reference,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "search state") -> SearchState:
        try:
            scores = data["backbone_scores"].items()
            return cls(
                generation=int(data["generation"]),
                population=[Individual.from_dict(d) for d in data["population"]],
                rng=data["rng"],
                records={i: CandidateRecord.from_dict(r) for i, r in data["records"].items()},
                backbone_scores={
                    BackboneKey.parse(k): BackboneScore.from_dict(s) for k, s in scores
                },
                hypervolume=[HypervolumePoint.from_dict(h) for h in data["hypervolume"]],
                reference=data["reference"],
                seconds=dict(data["seconds"]),
                inputs=dict(data["inputs"]),
            )
        except (HnasError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HnasError(
                f"{source} is malformed ({type(exc).__name__}: {shown(exc)}); "
                "restore it or start again in a new --out"
            ) from None

    def fused(self) -> list[CandidateRecord]:
        """The candidates stage 2 has fused, in the order they were met."""
        return [r for r in self.records.values() if r.fusion is not None]


def multimodal_objectives(results: list[FusionResult], hardware: bool = True) -> np.ndarray:
    """(error, latency, energy) of fused candidates; error alone when ``hardware`` is off;
    energy left out when the LUT has none."""
    rows = []
    for fusion in results:
        row = [1.0 - fusion.val_metric]
        if hardware:
            row.append(fusion.cost.latency_ms)
            if fusion.cost.energy_mj is not None:
                row.append(fusion.cost.energy_mj)
        rows.append(row)
    return np.asarray(rows, dtype=float)


def backbone_objectives(records: list[CandidateRecord], hardware: bool = True) -> np.ndarray:
    """Stage 1: mean error of the backbones alone, summed latency and energy of them."""
    rows = []
    for r in records:
        scores = list(r.unimodal.values())
        row = [float(np.mean([1.0 - s.val_metric for s in scores]))]
        if hardware:
            row.append(sum(s.cost.latency_ms for s in scores))
            energies = [s.cost.energy_mj for s in scores]
            if None not in energies:
                row.append(sum(energies))
        rows.append(row)
    return np.asarray(rows, dtype=float)


def fusion_of(records: list[CandidateRecord]) -> list[FusionResult]:
    """The stage-2 results of fused records."""
    return [r.fusion for r in records if r.fusion is not None]


class Search:
    def __init__(
        self,
        inputs: SearchInputs,
        worker: Worker,
        executor: Executor,
        state: SearchState,
        progress: SearchProgress,
    ) -> None:
        self.inputs, self.config = inputs, inputs.config
        self.mode: Mode = inputs.config.run_mode
        self.worker, self.executor, self.state = worker, executor, state  # worker: this process's
        self.preset: SpacePreset = worker.context.preset
        self.progress = progress
        self.ran_on: dict[str, Any] = {}  # the executor's own account of this run
        self.rng = random.Random()
        set_python_rng_state(self.rng, state.rng)

    # the space as the mode allows it
    def constrain(self, individual: Individual) -> Individual:
        backbones, cells, nodes = individual.backbones, individual.cells, individual.nodes
        if not self.mode.search_backbones:
            backbones = {m: self.worker.context.fixed_config(m) for m in self.preset.modalities}
        if not self.mode.search_fusion:
            cells, nodes = 1, 1
        return Individual(backbones, cells, nodes)

    def initial_population(self) -> list[Individual]:
        return self._fill([], lambda: random_individual(self.preset, self.rng))

    def breed(self, elites: list[Individual]) -> list[Individual]:
        evo = self.config.evolution

        def child() -> Individual:
            first, second = self.rng.choice(elites), self.rng.choice(elites)
            if self.rng.random() < evo.crossover:
                first = crossover(first, second, self.rng)
            return mutate(first, self.preset, evo.mutation, self.rng)

        return self._fill(list(elites), child)

    def _fill(self, population: list[Individual], draw: Any) -> list[Individual]:
        """Add distinct individuals until the population is full (or the space, as the mode
        constrains it, has no new ones to offer)."""
        seen = {individual_id(ind) for ind in population}
        size = self.config.evolution.population
        for _ in range(50 * size):
            if len(population) >= size:
                break
            candidate = self.constrain(draw())
            if individual_id(candidate) not in seen:
                seen.add(individual_id(candidate))
                population.append(candidate)
        return population

    # stage 1
    def score_backbones(self, individual: Individual, generation: int) -> CandidateRecord:
        scores = {}
        for modality in self.preset.modalities:
            config = individual.backbones[modality]
            key = BackboneKey.of(modality, config)
            if key not in self.state.backbone_scores:
                score = score_backbone(self.worker.context, modality, config)
                self.state.backbone_scores[key] = score
            scores[modality] = self.state.backbone_scores[key]
        return CandidateRecord(individual_id(individual), generation, individual, scores)

    def run(self) -> None:
        evo = self.config.evolution
        while self.state.generation < evo.generations:
            g = self.state.generation
            self.progress.generation(g, evo.generations, f"generation {g + 1}")
            records = self.state.records
            started = time.perf_counter()
            for ind in self.state.population:
                if individual_id(ind) not in records:
                    records[individual_id(ind)] = self.score_backbones(ind, g)
            self.state.seconds["stage1"] += time.perf_counter() - started
            population = [records[individual_id(ind)] for ind in self.state.population]
            chosen = self.stage2_candidates(population, g)
            if len(chosen) < self.stage2_budget:
                self.progress.note(
                    f"generation {g + 1}: {len(chosen)} new candidates for stage 2 (budget "
                    f"{self.stage2_budget}): the population holds no more that were not fused"
                )
            started = time.perf_counter()
            self.fuse([r for r in chosen if r.fusion is None], g)
            self.state.seconds["stage2_wall"] += time.perf_counter() - started
            fused = self.state.fused()
            self.record_hypervolume(fused, g, len(chosen))
            elites = self.elites(fused)
            self.state.population = self.breed(elites)
            self.state.generation = g + 1
            self.state.rng = python_rng_state(self.rng)
            self.save()
        self.ran_on = self.executor.describe()
        self.progress.generation(evo.generations, evo.generations, "done")

    @property
    def stage2_budget(self) -> int:
        """Candidates fused per generation: the top quartile of the population."""
        evo = self.config.evolution
        return max(1, int(round(evo.quartile * evo.population)))

    def stage2_candidates(
        self, population: list[CandidateRecord], generation: int
    ) -> list[CandidateRecord]:
        """The best individuals by their backbones alone (NSGA-II order) that were not fused in
        an earlier generation, at most the stage-2 budget of them. Those this generation fused
        already (a resumed run) keep their place, so a resumed generation fuses the same ones."""
        order = pareto_order(backbone_objectives(population, self.mode.hardware))

        def open_to(record: CandidateRecord) -> bool:
            return record.fusion is None or record.fusion.generation == generation

        return [population[i] for i in order if open_to(population[i])][: self.stage2_budget]

    # stage 2
    def fuse(self, todo: list[CandidateRecord], generation: int) -> None:
        jobs = [
            FusionJob(
                r.individual,
                r.id,
                (self.config.evolution.seed * 1_000_003 + int(r.id, 16)) % 2**31,
                generation,
            )
            for r in todo
        ]
        self.progress.candidates(0, len(jobs), f"stage 2, generation {generation + 1}")
        for done, outcome in enumerate(self.executor.run(run_fusion_job, jobs), 1):
            candidate, result = outcome.id, outcome.result
            checkpoint.save(candidate_weights(self.inputs.out, candidate), outcome.weights)
            self.state.records[candidate] = replace(self.state.records[candidate], fusion=result)
            self.state.seconds["stage2_jobs"] += result.seconds
            self.save()  # a killed search keeps every finished candidate
            detail = (
                f"{candidate}: val {LABELS[self.worker.context.metric]} {result.val_metric:.1%}, "
                f"{result.cost.latency_ms:.3f} ms"
            )
            self.progress.candidates(done, len(jobs), detail)

    def elites(self, fused: list[CandidateRecord]) -> list[Individual]:
        """The best half of the stage-2 budget (at least two, to cross) by the multimodal
        objectives, among every candidate fused so far."""
        keep = max(2, int(round(self.stage2_budget / 2)))
        order = pareto_order(multimodal_objectives(fusion_of(fused), self.mode.hardware))
        return [fused[i].individual for i in order[:keep]]

    def record_hypervolume(self, fused: list[CandidateRecord], generation: int, new: int) -> None:
        """Of the multimodal front, normalised by a reference fixed after the first generation
        (1.1 × the worst latency and energy seen then, error 1), so generations compare; with
        the candidates fused so far and in this generation."""
        objectives = multimodal_objectives(fusion_of(fused))
        if self.state.reference is None:
            worst = objectives.max(axis=0)
            self.state.reference = [1.0, *(1.1 * worst[1:]).tolist()]
        reference = np.asarray(self.state.reference)
        value = hypervolume(objectives / reference, np.ones(len(reference)))
        self.state.hypervolume.append(HypervolumePoint(generation + 1, value, len(fused), new))

    def save(self) -> None:
        atomic_write_json(self.inputs.out / STATE_FILE, self.state.to_dict(self.config))


def input_record(inputs: SearchInputs) -> dict[str, Any]:
    """What a search reads, by content (LUT, supernets) and by name (dataset, its folder)."""
    return {
        "lut": {"path": str(inputs.lut), "sha256": file_digest([inputs.lut])[:16]},
        "supernets": {
            "path": str(inputs.supernets),
            "sha256": file_digest(supernet_files(Path(inputs.supernets)))[:16],
        },
        "dataset": inputs.dataset,
        "data_dir": str(Path(inputs.data_dir).resolve()) if inputs.data_dir else None,
    }


def changed_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between the inputs a state was searched with and this run's."""
    changed = []
    for what in ("lut", "supernets"):
        before, now = old.get(what) or {}, new[what]
        if before.get("sha256") != now["sha256"]:
            changed.append(
                f"--{what} {now['path']} is not what it searched with "
                f"({before.get('path')}, content {before.get('sha256')})"
            )
    for what in ("dataset", "data_dir"):
        if old.get(what) != new[what]:
            changed.append(f"--{what.replace('_', '-')} {new[what]} (it searched {old.get(what)})")
    return changed


def start_state(config: SearchConfig, inputs: dict[str, Any] | None = None) -> SearchState:
    rng = random.Random(config.evolution.seed)
    return SearchState(
        generation=0,
        population=[],
        rng=python_rng_state(rng),
        records={},
        backbone_scores={},
        hypervolume=[],
        reference=None,
        seconds={"stage1": 0.0, "stage2_jobs": 0.0, "stage2_wall": 0.0},
        inputs=inputs or {},
    )


def claim_out(out: Path, resume: bool) -> Path:
    """``--out`` under the output policy (:mod:`hnas_edge.outputs`): a new or empty folder (the
    supernets trained into it do not count), or with ``--resume`` a search to continue."""
    return claim_output(out, kind="folder", resume=resume, keep=("supernets",))


def load_state(inputs: SearchInputs, resume: bool) -> SearchState:
    """A new state, or the one in OUT when resuming with the same settings and inputs."""
    out, config = inputs.out, inputs.config
    claim_out(out, resume)
    record = input_record(inputs)
    path = out / STATE_FILE
    if not path.exists():
        return start_state(config, record)
    data = read_json(path, what="search state")
    if not isinstance(data, dict):
        raise HnasError(f"search state {path} is not a JSON object; start again in a new --out")
    if data.get("format") != FORMAT or data.get("settings") != config.to_dict():
        raise HnasError(
            f"{out} was searched with other settings; resume with the same options or a new --out"
        )
    state = SearchState.from_dict(data, f"search state {path}")
    changed = changed_inputs(state.inputs, record)
    if changed:
        raise HnasError(
            f"{out} was searched with other inputs: {'; '.join(changed)}; resume with those "
            "or start again in a new --out"
        )
    return state


def task_compute(compute: Compute, ray: RayOptions) -> Compute:
    """How a Ray task computes: a task given GPUs (``--task-gpus``) uses the one Ray assigns
    it (Ray sets its ``CUDA_VISIBLE_DEVICES``) as ``compute`` allows; a task given none
    computes on its CPUs, since Ray hides every GPU from it."""
    return compute if ray.task_gpus > 0 else replace(compute, accelerator="cpu")


def make_executor(
    workers: int, inputs: SearchInputs, worker: Worker, ray: RayOptions | None = None
) -> Executor:
    """One process (``workers`` 1) runs stage 2 with this process's ``worker``; other workers
    build their own, on the device ``inputs.compute`` names: several local workers share
    this machine's GPU, each with its own CUDA context."""
    if ray is not None:
        # nodes may not see this machine's files: the supernets and LUT travel with the context
        remote = replace(inputs, compute=task_compute(inputs.compute, ray))
        return RayPool(open_packed_worker, (remote, pack_inputs(remote)), ray, worker.shares)
    if workers < 1:
        raise HnasError(f"--workers {workers}: give at least 1")
    if workers == 1:
        return InProcess(worker)
    return LocalPool(workers, open_worker, (inputs,))


def search(
    inputs: SearchInputs,
    workers: int = 1,
    resume: bool = False,
    progress: SearchProgress | None = None,
    ray: RayOptions | None = None,
) -> tuple[Search, SearchState]:
    """Run (or finish) the generations; the caller writes the results. Stage-2 candidates run
    in this process (``workers`` 1), a local process pool, or on Ray (``ray``)."""
    state = load_state(inputs, resume)
    inputs.out.mkdir(parents=True, exist_ok=True)
    worker = open_worker(inputs)
    executor = make_executor(workers, inputs, worker, ray)
    runner = Search(inputs, worker, executor, state, progress or SearchProgress())
    if state.generation == 0 and not state.population:
        state.population = runner.initial_population()
        state.rng = python_rng_state(runner.rng)
        atomic_write_json(inputs.out / "settings.json", provenance(inputs.config.to_dict()))
    try:
        runner.run()
    finally:
        executor.close()
    return runner, state
