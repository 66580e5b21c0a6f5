"""`hnas lut compare`: how far two devices' costs disagree, part by part and network by network.

The figure that tells a user whether a LUT from one device can stand in for another: if the
rank correlation of whole-network predictions is high and few pairs flip order, a search run
against one LUT picks the same networks as against the other.

Two LUTs of one device at different batch sizes compare too: their figures are per batch, so B/A
is how cost grows from A's batch to B's (the comparison says so in one line).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hnas_edge.errors import HnasError
from hnas_edge.profiling.cost import predict
from hnas_edge.profiling.coverage import default_accounting
from hnas_edge.profiling.fidelity import spearman
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.mmnn import arch_parts, random_arch
from hnas_edge.space.presets import SpacePreset


@dataclass(frozen=True)
class Agreement:
    """How well values of B follow values of A."""

    n: int
    ratio_median: float
    ratio_p10: float
    ratio_p90: float
    spearman: float
    flipped_pairs: float

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def agreement(a: Sequence[float], b: Sequence[float]) -> Agreement:
    """Ratios b/a, Spearman's ρ, and the share of pairs that A and B order differently."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2:
        raise HnasError("need at least two values on both sides to compare")
    ratios = y / x
    pairs = list(itertools.combinations(range(len(x)), 2))
    flips = sum(1 for i, j in pairs if (x[i] - x[j]) * (y[i] - y[j]) < 0)
    return Agreement(
        n=len(x),
        ratio_median=float(np.median(ratios)),
        ratio_p10=float(np.percentile(ratios, 10)),
        ratio_p90=float(np.percentile(ratios, 90)),
        spearman=spearman(x, y),
        flipped_pairs=flips / len(pairs),
    )


@dataclass(frozen=True)
class Comparison:
    accounting: str
    parts_latency: Agreement
    parts_energy: Agreement | None
    networks_latency: Agreement | None
    networks_energy: Agreement | None
    batches: tuple[int, int] = (1, 1)  # A's and B's; figures are per batch

    @property
    def mixed_batches(self) -> bool:
        return self.batches[0] != self.batches[1]


def _energy_pairs(a: Lut, b: Lut, keys: Sequence[str]) -> tuple[list[float], list[float]]:
    pairs = [(a.energy_mj(k), b.energy_mj(k)) for k in keys]
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    return [x for x, _ in kept], [y for _, y in kept]


def compare_luts(
    a: Lut,
    b: Lut,
    preset: SpacePreset,
    samples: int = 200,
    seed: int = 0,
    accounting: str | None = None,
) -> Comparison:
    """Shared keys of the space, then ``samples`` random architectures priced by both LUTs."""
    accounting = accounting or (
        "paper" if "paper" in (default_accounting(a), default_accounting(b)) else "ours"
    )
    needed = [spec.key for spec in preset.required_specs(accounting)]
    shared = [k for k in needed if k in a and k in b]
    if len(shared) < 2:
        raise HnasError(
            f"the two LUTs share {len(shared)} key(s) of space {preset.name}; nothing to compare"
        )
    parts_latency = agreement([a.latency_ms(k) for k in shared], [b.latency_ms(k) for k in shared])
    ea, eb = _energy_pairs(a, b, shared)
    parts_energy = agreement(ea, eb) if len(ea) >= 2 else None
    networks_latency = networks_energy = None
    if not a.missing(needed) and not b.missing(needed):
        rng = random.Random(seed)
        costs = []
        for _ in range(samples):
            parts = arch_parts(preset, random_arch(preset, rng), accounting)
            costs.append((predict(a, parts), predict(b, parts)))
        networks_latency = agreement(
            [ca.latency_ms for ca, _ in costs], [cb.latency_ms for _, cb in costs]
        )
        if all(ca.energy_mj and cb.energy_mj for ca, cb in costs):
            networks_energy = agreement(
                [ca.energy_mj for ca, _ in costs], [cb.energy_mj for _, cb in costs]
            )
    return Comparison(
        accounting,
        parts_latency,
        parts_energy,
        networks_latency,
        networks_energy,
        (a.batch, b.batch),
    )
