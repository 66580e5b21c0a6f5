"""`hnas lut compare`: ratios, rank correlation and flipped pairs, checked by hand."""

from __future__ import annotations

import pytest

from hnas_edge.profiling.compare import agreement, compare_luts
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.presets import get_preset


def test_agreement_on_hand_computed_values():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [2.0, 4.0, 8.0, 6.0]  # B ranks 3 and 4 the other way round: 1 of 6 pairs flips
    result = agreement(a, b)
    assert result.ratio_median == pytest.approx(2.0)
    assert result.flipped_pairs == pytest.approx(1 / 6)
    assert result.spearman == pytest.approx(0.8)  # 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60


def lut_for(preset, scale, reverse=False):
    specs = preset.all_specs()
    entries = {}
    for i, spec in enumerate(specs):
        value = (len(specs) - i if reverse else i + 1) * scale
        entries[spec.key] = {"latency_ms": {"median": value}, "energy_mj": {"total": 2 * value}}
    return Lut(device={"name": "x", "runtime": "r", "precision": "fp32"}, entries=entries)


def test_a_device_that_is_uniformly_faster_ranks_every_network_alike():
    preset = get_preset("avmnist")
    comparison = compare_luts(lut_for(preset, 1.0), lut_for(preset, 0.5), preset, samples=30)
    assert comparison.parts_latency.ratio_median == pytest.approx(0.5)
    assert comparison.parts_latency.spearman == pytest.approx(1.0)
    assert comparison.networks_latency.spearman == pytest.approx(1.0)
    assert comparison.networks_latency.flipped_pairs == 0.0


def test_a_device_with_reversed_part_costs_disagrees():
    preset = get_preset("avmnist")
    comparison = compare_luts(
        lut_for(preset, 1.0), lut_for(preset, 1.0, reverse=True), preset, samples=30
    )
    assert comparison.parts_latency.spearman == pytest.approx(-1.0)
    assert comparison.parts_latency.flipped_pairs == 1.0
