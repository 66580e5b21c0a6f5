"""`hnas deploy --bench` times the drift reference beside the model and says how fast this
machine runs relative to when the LUT was made."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hnas_edge.backend import Source, get_runtime
from hnas_edge.backend.onnx import export_onnx
from hnas_edge.checks import Fields
from hnas_edge.deploy.runner import BenchReport, Deployed, bench, check_sidecar
from hnas_edge.errors import HnasError
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import REFERENCE, reference_module
from hnas_edge.ui.deploy import print_bench

FAST = DeviceProfile.from_dict(
    {
        "name": "cpu",
        "runtime": "onnxruntime",
        "meter": "estimate",
        "pin_core": False,
        "timing": {"warmup_s": 0.0, "min_iters": 5, "min_time_s": 0.0, "max_cv": 10.0},
    },
    "fast",
)


def deployed(tmp_path, reference: dict | None) -> Deployed:
    """The reference network itself deployed as a model, its sidecar promising 1 ms."""
    net, example = reference_module()
    path = export_onnx(net, example, tmp_path / "m.onnx")
    runtime = get_runtime("onnxruntime", threads=1)
    runtime.load(Source.ONNX, path)
    sidecar = {
        "inputs": [{"name": "input0", "shape": [1, 1, 28, 28]}],
        "output": {"task": "multiclass"},
        "predicted": {"latency_ms": 1.0, "energy_mj": 15.0},
        "searched_for": {"device": "cpu", **({"reference": reference} if reference else {})},
    }
    return Deployed(path, sidecar, runtime, True)


def test_bench_prints_the_machines_speed_relative_to_the_luts_beside_the_prediction(tmp_path):
    with deployed(tmp_path, {"network": REFERENCE, "baseline_ms": 0.5}) as model:
        report = bench(model, FAST, 5)
    assert report.reference_ms is not None and report.reference_baseline_ms == 0.5
    assert report.speed == pytest.approx(0.5 / report.reference_ms)
    # the prediction at today's speed: slower machine, proportionally longer prediction
    assert report.predicted_now_ms == pytest.approx(1.0 * report.reference_ms / 0.5)
    assert report.to_dict()["speed_vs_lut"] == report.speed
    out = io.StringIO()
    print_bench(Console(file=out, width=300), report, "cpu")
    assert f"runs at {report.speed:.2f}× the speed it had when the LUT was made" in out.getvalue()
    assert "predicted at today's speed" in out.getvalue()


def test_without_a_reference_in_the_sidecar_nothing_more_is_timed_or_said(tmp_path):
    with deployed(tmp_path, None) as model:
        report = bench(model, FAST, 5)
    assert report.speed is None and report.reference_ms is None
    out = io.StringIO()
    print_bench(Console(file=out, width=300), report, "cpu")
    assert "speed it had" not in out.getvalue()


def test_a_reference_of_another_network_is_not_compared():
    report = BenchReport(
        "onnxruntime", 1.0, 1.1, 5, None, "estimate", 1.0, None, "cpu", reference_baseline_ms=0.5
    )
    assert report.speed is None and report.predicted_now_ms is None


def test_a_sidecar_with_a_broken_reference_is_refused_in_one_line():
    side = {
        "inputs": [{"name": "image", "shape": [1, 1, 28, 28]}],
        "output": {"task": "multiclass"},
        "searched_for": {"reference": {"network": REFERENCE, "baseline_ms": -1}},
    }
    with pytest.raises(HnasError, match=r"searched_for.reference.baseline_ms") as error:
        check_sidecar(side, Fields("sidecar m.onnx.json", "re-export"))
    assert "\n" not in str(error.value)
