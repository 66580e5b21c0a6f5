"""scripts/bench_stage2.py: one candidate's stage 2 timed step by step, as its note says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_stage2.py"

pytestmark = pytest.mark.usefixtures("one_thread")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_stage2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_times_each_step_of_one_candidate_repeats_it_exactly_and_bounds_darts(
    supernets, lut, tmp_path, capsys
):
    out = tmp_path / "bench.json"
    load_script().main(
        ["--lut", str(lut), "--supernets", str(supernets), "--budgets", "small",
         "--repeats", "2", "--cells", "1", "--nodes", "2", "--limit", "96", "--out", str(out)]
    )  # fmt: skip
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["budget"], row["accelerator"]) == ("small", "cpu")
    for step in ("seconds", "features", "darts", "finetune"):
        assert 0 < row[step]["min"] <= row[step]["median"] <= row[step]["max"]
    assert len(row["val_metric"]) == 1 and len(row["operators"]) == 1  # the same result twice
    assert len(row["operators"][0].split()) == 2  # 1 cell × 2 nodes
    low = row["darts_floor"]  # DARTS's products alone at the best rate measured here
    assert low["darts_gflop"] > 0 and low["gflop_per_s"] > 0
    assert low["seconds"] == pytest.approx(low["darts_gflop"] / low["gflop_per_s"])
    assert low["seconds"] < row["darts"]["min"]  # it ran them, and more, at no better rate
    printed = capsys.readouterr().out
    assert "budget  device" in printed and "DARTS floor" in printed


def test_the_counted_products_grow_with_the_nodes_and_the_samples(supernets, lut):
    bench = load_script()

    def context(limit: int):
        args = bench.argparse.Namespace(
            budgets=["small"], accelerators=["cpu"], limit=limit, supernets=supernets,
            dataset="avdigits", lut=lut,
        )  # fmt: skip
        return bench.contexts(args)["small", "cpu"]

    small, twice = context(64), context(128)
    one_node, two_nodes = bench.candidate(small, 0, 1, 1), bench.candidate(small, 0, 1, 2)
    flops = bench.darts_flops(small, one_node)
    assert bench.darts_flops(small, two_nodes) > flops
    assert bench.darts_flops(twice, one_node) == pytest.approx(2 * flops)
