"""Stage 1 variation and selection: stays in the space, carries C and D, orders by Pareto rank."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hnas_edge.search.evolution import (
    crossover,
    first_front,
    hypervolume,
    mutate,
    pareto_order,
    random_individual,
)
from hnas_edge.space.presets import get_preset


@pytest.mark.parametrize("preset_name", ["avmnist", "memes"])
def test_mutation_and_crossover_stay_in_the_space(preset_name):
    preset = get_preset(preset_name)
    rng = random.Random(0)
    population = [random_individual(preset, rng) for _ in range(20)]
    for _ in range(200):
        a, b = rng.sample(population, 2)
        child = mutate(crossover(a, b, rng), preset, rate=0.4, rng=rng)
        for modality, space in preset.backbones:
            assert space.validate_config(child.backbones[modality]) == child.backbones[modality]
        assert child.cells in preset.cells and child.nodes in preset.nodes


def test_cells_and_nodes_are_inherited_and_mutated():
    preset = get_preset("avmnist")
    rng = random.Random(1)
    a, b = random_individual(preset, rng), random_individual(preset, rng)
    a = type(a)(a.backbones, 1, 1)
    b = type(b)(b.backbones, 4, 4)
    children = [crossover(a, b, rng) for _ in range(100)]
    assert {(c.cells, c.nodes) for c in children} <= {(1, 1), (1, 4), (4, 1), (4, 4)}
    assert len({c.cells for c in children}) == 2  # from either parent
    unchanged = mutate(a, preset, rate=0.0, rng=rng)
    assert (unchanged.cells, unchanged.nodes) == (1, 1)
    mutated = {(m.cells, m.nodes) for m in (mutate(a, preset, 1.0, rng) for _ in range(50))}
    assert len(mutated) > 1


def test_pareto_order_puts_the_first_front_first_and_extremes_before_the_crowd():
    objectives = np.array([[1.0, 5.0], [2.0, 4.0], [2.1, 3.9], [5.0, 1.0], [5.0, 5.0]])
    order = pareto_order(objectives)
    assert sorted(first_front(objectives)) == [0, 1, 2, 3]
    assert order[-1] == 4  # dominated
    assert set(order[:2]) == {0, 3}  # the extremes of the front have infinite crowding distance


def test_hypervolume_of_a_known_front():
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == pytest.approx(3.0)
