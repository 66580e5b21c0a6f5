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


def test_the_bench_times_each_step_of_one_candidate_and_repeats_it_exactly(
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
    assert "budget  device" in capsys.readouterr().out
