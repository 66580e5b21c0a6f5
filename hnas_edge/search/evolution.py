"""Stage 1 building blocks: individuals, variation within the space, Pareto selection.

An individual carries one backbone config per modality *and* the fusion macro-architecture
(cells C, nodes D), which are inherited and mutated like any gene (the paper's code re-draws them
at random). Sorting, crowding and hypervolume come from pymoo.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from hnas_edge.space.presets import SpacePreset


@dataclass(frozen=True)
class EvolutionConfig:
    """The paper's defaults."""

    population: int = 128
    generations: int = 30
    quartile: float = 0.25
    mutation: float = 0.4
    crossover: float = 0.8
    seed: int = 0


@dataclass(frozen=True)
class Individual:
    backbones: Mapping[str, Mapping[str, list[int]]]
    cells: int
    nodes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbones": {m: dict(c) for m, c in self.backbones.items()},
            "cells": self.cells,
            "nodes": self.nodes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Individual:
        return cls(
            {m: {k: list(v) for k, v in c.items()} for m, c in data["backbones"].items()},
            int(data["cells"]),
            int(data["nodes"]),
        )


def random_individual(preset: SpacePreset, rng: random.Random) -> Individual:
    return Individual(
        {m: space.sample_config(rng) for m, space in preset.backbones},
        rng.choice(preset.cells),
        rng.choice(preset.nodes),
    )


def mutate(
    individual: Individual, preset: SpacePreset, rate: float, rng: random.Random
) -> Individual:
    """Each gene (kernel, expand, depth of every backbone; C; D) re-drawn with probability
    ``rate`` from its allowed values."""
    backbones = {}
    for modality, space in preset.backbones:
        config = {k: list(v) for k, v in individual.backbones[modality].items()}
        for gene, values in config.items():
            for i in range(len(values)):
                if rng.random() < rate:
                    values[i] = rng.choice(space.gene_choices(gene, i))
        backbones[modality] = config
    cells = rng.choice(preset.cells) if rng.random() < rate else individual.cells
    nodes = rng.choice(preset.nodes) if rng.random() < rate else individual.nodes
    return Individual(backbones, cells, nodes)


def crossover(first: Individual, second: Individual, rng: random.Random) -> Individual:
    """Uniform crossover: every gene from one parent or the other, C and D included."""

    def pick(a: Any, b: Any) -> Any:
        return a if rng.random() < 0.5 else b

    backbones = {
        modality: {
            gene: [
                pick(a, b) for a, b in zip(values, second.backbones[modality][gene], strict=True)
            ]
            for gene, values in config.items()
        }
        for modality, config in first.backbones.items()
    }
    return Individual(backbones, pick(first.cells, second.cells), pick(first.nodes, second.nodes))


def pareto_order(objectives: np.ndarray) -> list[int]:
    """Indices best first: by non-dominated front, then by crowding distance within a front
    (NSGA-II's order). ``objectives`` has one row per individual, all to minimise."""
    fronts = NonDominatedSorting().do(objectives)
    crowding = get_crowding_function("cd")
    order: list[int] = []
    for front in fronts:
        distance = crowding.do(objectives[front])
        order += [int(front[i]) for i in np.argsort(-distance, kind="stable")]
    return order


def first_front(objectives: np.ndarray) -> list[int]:
    return [int(i) for i in NonDominatedSorting().do(objectives, only_non_dominated_front=True)]


def hypervolume(objectives: np.ndarray, reference: Sequence[float]) -> float:
    return float(HV(ref_point=np.asarray(reference, dtype=float))(objectives))
