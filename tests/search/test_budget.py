"""Stage-2 budgets: a flat-rate budget stretched over more epochs is flagged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import hnas

from hnas_edge.search.config import get_budget
from hnas_edge.search.darts import DartsConfig


def darts(budget: str, **changes) -> DartsConfig:
    return replace(get_budget(budget).apply(DartsConfig()), **changes)


def test_more_epochs_at_the_small_budgets_architecture_rate_are_flagged_with_the_way_out():
    warning = get_budget("small").overrun_warning(darts("small", epochs=10))
    assert warning is not None
    assert "10 DARTS epochs" in warning and "rate 0.003, which is set for 3" in warning
    assert "--budget paper --darts-epochs N" in warning and "--lr-arch" in warning


@pytest.mark.parametrize(
    ("budget", "changes"),
    [
        ("small", {}),  # as the budget was set
        ("small", {"epochs": 2}),  # fewer epochs: less travel, not more
        ("small", {"epochs": 10, "lr_arch": 3e-4}),  # a rate chosen for the longer run
        ("paper", {"epochs": 40}),  # annealed rates
    ],
)
def test_a_budget_as_set_or_adjusted_raises_no_warning(budget, changes):
    assert get_budget(budget).overrun_warning(darts(budget, **changes)) is None


def test_hnas_search_prints_the_warning_before_it_checks_anything_else(tmp_path):
    result = hnas(
        "search", "--lut", tmp_path / "x.json", "--out", tmp_path / "run", "--darts-epochs", "10"
    )
    assert result.returncode == 2  # the missing LUT, after the warning
    first = result.stderr.splitlines()[0]
    assert first.startswith("warning: 10 DARTS epochs at the small budget's")
