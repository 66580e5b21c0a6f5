"""Export a searched model, deploy it, and hold it to what the search promised (fixtures in
tests/conftest.py: a tiny finished search)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from conftest import MULTIBENCH_AUDIO, PRESET, hnas, read_front, write_avmnist_npy
from rich.console import Console

from hnas_edge.deploy.runner import bench, evaluate_split, open_artifact, predict_file
from hnas_edge.errors import HnasError
from hnas_edge.export.artifact import export_model, sidecar_path
from hnas_edge.export.searched import load_searched
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.lut import Calibration, Lut
from hnas_edge.quickstart import Budget, pick_models, quickstart
from hnas_edge.search.records import FrontModel
from hnas_edge.space.mmnn import random_arch
from hnas_edge.ui.deploy import print_split

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = DeviceProfile.load("cpu")


@pytest.fixture(scope="module")
def model(finished):
    return read_front(finished)["models"][0]


@pytest.fixture(scope="module")
def exported(finished, model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    searched = load_searched(finished / model["id"])
    return {fmt: export_model(searched, fmt, folder / f"m.{fmt}") for fmt in ("onnx", "ort")}


@pytest.mark.parametrize("fmt", ["onnx", "ort"])
def test_an_export_matches_torch_and_says_what_it_promises(exported, model, fmt):
    report = exported[fmt]
    assert report.max_abs_diff <= 1e-4
    side = json.loads(report.sidecar.read_text())
    assert [i["name"] for i in side["inputs"]] == ["image", "audio"]
    assert side["inputs"][0]["shape"] == [1, 1, 28, 28]  # batch 1: what the LUT priced
    assert side["batch"] == 1  # what the prediction is for and deploy --bench runs at
    assert side["predicted"] == {"latency_ms": model["latency_ms"], "energy_mj": model["energy_mj"]}
    assert side["search_metrics"]["metric"] == "accuracy"
    assert side["search_metrics"]["test_metric"] == model["test_metric"]
    assert side["searched_for"]["device"] == "macs"
    assert side["architecture"] == model["architecture"]
    assert len(side["output"]["labels"]) == 10


@pytest.mark.parametrize("fmt", ["onnx", "ort"])
def test_the_deployed_model_scores_what_the_search_reported(exported, model, finished, fmt):
    with open_artifact(exported[fmt].path, CPU) as deployed:
        limit = read_front(finished)["samples_limit"]
        score = evaluate_split(deployed, "test", limit=limit)
    assert score["samples"] == limit and score["metric"] == "accuracy"
    assert score["value"] == pytest.approx(model["test_metric"], abs=1e-3)
    assert score["search_test_metric"] == model["test_metric"]


def test_deploy_split_prints_the_metric_by_name_beside_the_search_figure():
    console = Console(record=True, width=200)
    score = {"split": "test", "samples": 96, "metric": "weighted_f1", "value": 0.5}
    print_split(console, {**score, "search_test_metric": 0.52})
    text = console.export_text()
    assert text == "test: weighted F1 50.00% on 96 (search reported 52.00% on test)\n"


def test_a_dynamic_batch_export_scores_whole_batches(finished, model, tmp_path):
    searched = load_searched(finished / model["id"])
    report = export_model(searched, "onnx", tmp_path / "dyn.onnx", dynamic_batch=True)
    assert json.loads(report.sidecar.read_text())["inputs"][1]["shape"] == ["batch", 1, 20, 20]
    with open_artifact(report.path, CPU) as deployed:
        assert deployed.graph_batch is None  # any batch; --bench still runs at the sidecar's
        score = evaluate_split(deployed, "test", limit=read_front(finished)["samples_limit"])
    assert score["value"] == pytest.approx(model["test_metric"], abs=1e-3)


def test_a_bench_reports_latency_energy_and_the_prediction(exported, model):
    with open_artifact(exported["onnx"].path, CPU) as deployed:
        report = bench(deployed, CPU, 20)
    assert 0 < report.latency_median_ms <= report.latency_p90_ms
    assert report.iterations >= 20 and report.runtime == "onnxruntime"
    assert report.energy_mj is not None and report.energy_source in ("rapl", "estimate")
    assert report.predicted_latency_ms == model["latency_ms"]
    assert report.latency_error == pytest.approx(report.latency_median_ms / model["latency_ms"] - 1)


def test_energy_is_not_metered_when_the_model_runs_off_the_profiles_runtime(exported):
    """An .onnx under a profile that times torch modules (the gpu profile) runs on onnxruntime:
    the profile's meter would price another processor's run, so no energy is claimed."""
    torch_profile = DeviceProfile.from_dict({**CPU.to_dict(), "runtime": "torch"}, "torch-cpu")
    with open_artifact(exported["onnx"].path, torch_profile) as deployed:
        report = bench(deployed, torch_profile, 5)
    assert report.runtime == "onnxruntime" and report.latency_median_ms > 0
    assert report.energy_mj is None and report.energy_error is None
    assert report.energy_source.startswith("not measured: ran on onnxruntime")


def test_predictions_for_an_npz_of_modality_arrays(exported, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "image": rng.standard_normal((3, 1, 28, 28)).astype(np.float32),
        "audio": rng.standard_normal((3, 1, 20, 20)).astype(np.float32),
    }
    np.savez(tmp_path / "in.npz", **arrays)
    with open_artifact(exported["onnx"].path, CPU) as deployed:
        predictions, warning = predict_file(deployed, tmp_path / "in.npz")
        assert warning is None
        assert predictions.shape == (3,) and set(predictions) <= set(range(10))
        np.savez(tmp_path / "bad.npz", **{**arrays, "audio": arrays["audio"][:, :, :10]})
        with pytest.raises(HnasError, match="audio samples of .*bad.npz are 1×10×20 but the model"):
            predict_file(deployed, tmp_path / "bad.npz")
        np.savez(tmp_path / "f64.npz", **{**arrays, "image": arrays["image"].astype(np.float64)})
        with pytest.raises(HnasError, match="float64; the model takes float32"):
            predict_file(deployed, tmp_path / "f64.npz")


def one_line_exit_2(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_broken_artifacts_are_one_line_and_exit_2(exported, tmp_path):
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(exported["onnx"].path.read_bytes()[:1000])
    shutil.copy(exported["onnx"].sidecar, sidecar_path(truncated))
    one_line_exit_2(hnas("deploy", truncated, "--bench", 5))
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(exported["onnx"].path, lonely)
    result = hnas("deploy", lonely, "--bench", 5)
    one_line_exit_2(result)
    assert "sidecar" in result.stderr
    one_line_exit_2(hnas("deploy", tmp_path / "absent.plan"))


@pytest.fixture
def multibench(tmp_path):
    """AV-MNIST as MultiBench ships it: 112×112 spectrograms, where the model takes 20×20."""
    return write_avmnist_npy(tmp_path / "avmnist", 112, sizes=(("train", 12), ("test", 4)))


def test_export_refuses_a_dataset_of_other_sizes_and_writes_nothing(
    finished, model, multibench, tmp_path
):
    result_dir = tmp_path / "search"
    shutil.copytree(finished, result_dir)
    front = {**read_front(result_dir), "dataset": "avmnist", "data_dir": str(multibench)}
    (result_dir / "front.json").write_text(json.dumps(front))
    result = hnas("export", result_dir / model["id"], "-o", tmp_path / "m.onnx")
    one_line_exit_2(result)
    assert MULTIBENCH_AUDIO in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_deploy_refuses_samples_of_other_sizes_than_the_sidecar_declares(
    exported, multibench, tmp_path
):
    artifact = tmp_path / "m.onnx"
    shutil.copy(exported["onnx"].path, artifact)
    side = json.loads(exported["onnx"].sidecar.read_text())
    sidecar_path(artifact).write_text(
        json.dumps({**side, "dataset": "avmnist", "data_dir": str(multibench)})
    )
    result = hnas("deploy", artifact, "--split", "test")
    one_line_exit_2(result)
    assert (
        "audio samples of dataset avmnist are 1×112×112 but the model expects 1×20×20: "
        "resample the spectrograms to 20×20" in result.stderr
    )
    arrays = np.zeros((2, 1, 28, 28), np.float32), np.zeros((2, 1, 112, 112), np.float32)
    np.savez(tmp_path / "big.npz", image=arrays[0], audio=arrays[1])
    result = hnas("deploy", artifact, "--input", tmp_path / "big.npz")
    one_line_exit_2(result)
    assert "big.npz are 1×112×112 but the model expects 1×20×20" in result.stderr


@pytest.fixture(scope="module")
def searched_at_batch_2(finished, tmp_path_factory):
    """The tiny search, as if its LUT had been profiled with --batch 2 (front.json says so)."""
    result_dir = tmp_path_factory.mktemp("batch2") / "search"
    shutil.copytree(finished, result_dir)
    front = read_front(result_dir)
    front["lut"]["batch"] = 2
    (result_dir / "front.json").write_text(json.dumps(front))
    return result_dir


def test_a_model_searched_at_batch_2_exports_and_benches_at_batch_2(
    searched_at_batch_2, model, tmp_path
):
    searched = load_searched(searched_at_batch_2 / model["id"])
    report = export_model(searched, "onnx", tmp_path / "b2.onnx")
    side = json.loads(report.sidecar.read_text())
    assert side["batch"] == 2 and side["check"]["samples"] == 16
    assert [i["shape"][0] for i in side["inputs"]] == [2, 2] and side["output"]["shape"][0] == 2
    with open_artifact(report.path, CPU) as deployed:
        assert deployed.graph_batch == 2
        assert deployed.runtime.session.get_inputs()[0].shape[0] == 2  # the graph's own batch
        timed = bench(deployed, CPU, 5)
        # an odd number of samples: the last batch is filled up, its extra rows dropped
        limit = read_front(searched_at_batch_2)["samples_limit"] - 1
        score = evaluate_split(deployed, "test", limit=limit)
    assert timed.batch == 2 and timed.predicted_latency_ms == model["latency_ms"]
    assert score["samples"] == limit
    shown = hnas("deploy", report.path, "--bench", 5)
    assert shown.returncode == 0, shown.stderr
    assert "(onnxruntime) at batch 2 (per batch): latency median" in shown.stdout


def test_export_refuses_a_batch_its_lut_did_not_price(searched_at_batch_2, model, tmp_path):
    result = hnas("export", searched_at_batch_2 / model["id"], "--batch", 1,
                  "-o", tmp_path / "b1.onnx")  # fmt: skip
    one_line_exit_2(result)
    assert (
        f"--batch 1: {model['id']} was searched against a LUT at batch 2, so its predicted cost "
        "is for batch 2; export at --batch 2 (the default), or profile a LUT with --batch 1 and "
        "search with it" in result.stderr
    )
    assert not (tmp_path / "b1.onnx").exists()


def test_export_of_a_model_not_on_the_front_is_refused(finished, tmp_path):
    result = hnas("export", finished / "0000000000", "-o", tmp_path / "x.onnx")
    one_line_exit_2(result)
    assert "not on the front" in result.stderr


def test_pick_models_takes_the_most_accurate_and_the_fastest():
    def front_model(id, val_metric, latency_ms):
        arch = random_arch(PRESET, 0)
        return FrontModel(id, arch, val_metric, val_metric, latency_ms, None, 0, f"models/{id}")

    models = [front_model("a", 0.9, 3.0), front_model("b", 0.8, 1.0), front_model("c", 0.85, 2.0)]
    assert pick_models(models) == {"most_accurate": "a", "fastest": "b"}


def test_quickstart_reuses_finished_stages(supernets, lut, finished, tmp_path):
    """With profile, calibration, supernets and search already there, only export and deploy
    run; a second run reuses everything."""
    out = tmp_path / "qs"
    out.mkdir()
    cpu_lut = Lut.load(lut)
    cpu_lut.device = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}
    cpu_lut.calibration["latency"] = Calibration(a=1.0, b=0.001, c=0.0, fitted_on=4)
    cpu_lut.save(out / "cpu.json")
    shutil.copytree(supernets, out / "supernets")
    shutil.copytree(finished, out / "search")
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    record = quickstart(out, console, Budget(bench_iterations=10))
    assert set(record["stages"]) == {"export", "deploy"}
    assert set(record["summary"]) == {"most_accurate", "fastest"}
    for entry in record["summary"].values():
        assert (out / entry["artifact"]).exists()
        assert entry["bench"]["latency_median_ms"] > 0
        assert entry["test"]["metric"] == "accuracy"
    again = quickstart(out, console, Budget(bench_iterations=10))
    assert again["stages"] == record["stages"]


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_plan_is_built_checked_and_deployed_on_a_gpu(finished, model, tmp_path, precision):
    pytest.importorskip("tensorrt")
    pytest.importorskip("cuda")
    plan = tmp_path / f"m-{precision}.plan"
    report = export_model(load_searched(finished / model["id"]), "plan", plan, precision)
    assert report.checked_against == "onnxruntime"
    assert report.max_abs_diff <= (1e-3 if precision == "fp32" else 5e-2)
    with open_artifact(plan, DeviceProfile.load("gpu")) as deployed:
        limit = read_front(finished)["samples_limit"]
        score = evaluate_split(deployed, "test", limit=limit)
    assert score["value"] == pytest.approx(model["test_metric"], abs=0.02)
