"""Batch size as part of a LUT: a LUT is measured at one batch (`hnas profile --batch B`), says so
in its header, is checked against whole networks at that batch, and is never mixed with a LUT of
another batch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from conftest import fast_device, hnas

from hnas_edge.backend.base import Runtime, Source
from hnas_edge.backend.tensorrt import check_feed
from hnas_edge.backend.timing import LatencyStats, Timing
from hnas_edge.errors import HnasError
from hnas_edge.io import tomllib
from hnas_edge.profiling.compare import compare_luts
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.harmonic_import import import_tables, paper_key
from hnas_edge.profiling.lut import Lut, identity, merge
from hnas_edge.profiling.measure import Bench, batched_shapes
from hnas_edge.profiling.profiler import ProfileRequest, profile
from hnas_edge.profiling.validate import priced
from hnas_edge.space.mmnn import random_arch
from hnas_edge.space.presets import get_preset
from hnas_edge.space.specs import FusionOpSpec, LinearSpec

FAST_DEVICE = fast_device()
FAST = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "fast")
PRESET = get_preset("avmnist")
HEADER = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}


def full_lut(path: Path, batch: int | None, latency: float = 0.1) -> Path:
    """Every avmnist key at ``latency`` ms; ``batch`` None writes no batch (an older LUT)."""
    entries = {
        spec.key: {"latency_ms": {"median": latency}, "energy_mj": {"total": 2 * latency}}
        for spec in PRESET.all_specs()
    }
    settings = {} if batch is None else {"batch": batch}
    Lut(device=dict(HEADER), settings=settings, entries=entries).save(path)
    return path


class Recording(Runtime):
    """A module runtime that runs each module once on what it is fed and records the shapes."""

    name = "recording"
    accepts = frozenset({Source.MODULE})

    def __init__(self) -> None:
        self.fed: list[dict[str, tuple[int, ...]]] = []
        self.outputs: list[tuple[int, ...]] = []

    def _load(self, source: Source, model: Any, input_names: Any) -> None:
        self.module = model

    def run(self, inputs: Any) -> list[np.ndarray]:
        with torch.no_grad():
            out = self.module(*(torch.from_numpy(x) for x in inputs.values()))
        return [out.numpy()]

    def time(self, inputs: Any, settings: Any) -> Timing:
        self.fed.append({name: x.shape for name, x in inputs.items()})
        self.outputs.append(self.run(inputs)[0].shape)
        return Timing(LatencyStats.from_samples([1.0, 1.0]), 1)

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


# --- the header --------------------------------------------------------------------------------


def test_a_lut_without_a_batch_reads_as_batch_1(tmp_path):
    """Every LUT made before batch sizes were recorded keeps working, as batch 1."""
    old = full_lut(tmp_path / "old.json", batch=None)
    assert "batch" not in json.loads(old.read_text())["settings"]
    assert Lut.load(old).batch == 1
    assert Lut.load(full_lut(tmp_path / "b8.json", batch=8)).batch == 8


def test_the_batch_is_part_of_a_luts_identity(tmp_path):
    one, eight = (
        Lut.load(full_lut(tmp_path / "a.json", 1)),
        Lut.load(full_lut(tmp_path / "b.json", 8)),
    )
    assert identity(one) == ("cpu", "onnxruntime", "fp32", 1)
    assert identity(eight) == ("cpu", "onnxruntime", "fp32", 8)


@pytest.mark.parametrize("batch", [0, -2, 2.5, "8", True])
def test_a_batch_that_is_not_a_whole_number_of_samples_is_refused(tmp_path, batch):
    path = full_lut(tmp_path / "cpu.json", 1)
    data = json.loads(path.read_text())
    data["settings"]["batch"] = batch
    path.write_text(json.dumps(data))
    with pytest.raises(HnasError, match=r"settings\.batch = .*allowed: an integer >= 1"):
        Lut.load(path)


def test_imported_paper_tables_are_batch_1(tmp_path):
    """The Harmonic-NAS tables were measured at batch 1 (their keys say `input:1_...`)."""
    spec = FusionOpSpec("Sum", 192, 16)
    table = tmp_path / "lut_fusion_tx2.json"
    table.write_text(json.dumps({paper_key(spec): {"lat": 0.5, "enrg": 1.0}}))
    assert import_tables([], table, "tx2").lut.batch == 1


# --- profiling at a batch ----------------------------------------------------------------------


def test_parts_are_fed_the_batch_and_their_shapes_otherwise_unchanged():
    spec = FusionOpSpec("ConcatFC", 192, 16)
    assert batched_shapes(spec) == [(1, 192, 16), (1, 192, 16)]
    assert batched_shapes(spec, 8) == [(8, 192, 16), (8, 192, 16)]
    runtime = Recording()
    entry = Bench(FAST, runtime, EnergyMeasurer.for_device(FAST)).measure_part(spec, 0, batch=8)
    assert runtime.fed == [{"input0": (8, 192, 16), "input1": (8, 192, 16)}]
    assert runtime.outputs == [(8, 192, 16)]
    # energy is per call (per batch), as latency is: nominal power × the batch's latency
    assert entry["energy_mj"]["total"] == pytest.approx(10.0 * entry["latency_ms"]["median"])


def test_profile_records_its_batch_and_measures_every_part_at_it(tmp_path):
    out = tmp_path / "b4.json"
    request = ProfileRequest(device=FAST, space="avmnist", out=out, limit=3, batch=4)
    lut = profile(request)
    assert lut.batch == 4 and Lut.load(out).settings["batch"] == 4
    assert len(Lut.load(out)) == 3


def test_a_profile_request_refuses_a_batch_below_one(tmp_path):
    with pytest.raises(HnasError, match="--batch 0: give a whole number of samples, 1 or more"):
        ProfileRequest(device=FAST, space="avmnist", out=tmp_path / "x.json", batch=0)


def test_resume_refuses_another_batch_in_one_line_and_keeps_the_file(tmp_path):
    device = tmp_path / "fast.toml"
    device.write_text(FAST_DEVICE)
    out = tmp_path / "lut.json"
    profiled = hnas("profile", "--device", device, "--out", out, "--limit", "1", "--batch", "8")
    assert profiled.returncode == 0, profiled.stderr
    before = out.read_bytes()
    resumed = hnas("profile", "--device", device, "--out", out, "--resume")  # --batch 1
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    line = resumed.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "was profiled at batch 8, not --batch 1; resume it with --batch 8" in line
    assert out.read_bytes() == before
    again = hnas("profile", "--device", device, "--out", out, "--resume", "--batch", "8")
    assert again.returncode == 0, again.stderr


# --- checking against whole networks at the batch --------------------------------------------


def test_validate_measures_whole_networks_at_the_luts_batch(tmp_path):
    lut = Lut.load(full_lut(tmp_path / "b3.json", 3))
    arch = random_arch(PRESET, 0).to_dict()
    runtime = Recording()
    bench = Bench(FAST, runtime, EnergyMeasurer.for_device(FAST))
    measured = priced(lut, bench.measure_network(arch, seed=0, batch=lut.batch))
    assert {shape[0] for shape in runtime.fed[0].values()} == {3}
    assert runtime.outputs == [(3, PRESET.n_classes)]
    assert measured.latency_sum_ms == pytest.approx(0.1 * measured.n_parts)


def test_lut_validate_runs_networks_at_the_batch_end_to_end(tmp_path):
    device = tmp_path / "fast.toml"
    device.write_text(FAST_DEVICE)
    path = full_lut(tmp_path / "b2.json", 2)
    result = hnas("lut", "validate", path, "--device", device, "--samples", "8")
    assert result.returncode == 0, result.stderr
    assert Lut.load(path).extra["validation"]["batch"] == 2


# --- never mixed -----------------------------------------------------------------------------


def test_luts_of_two_batches_do_not_merge():
    one = Lut(device=dict(HEADER), settings={"batch": 1}, entries={})
    eight = Lut(device=dict(HEADER), settings={"batch": 8}, entries={})
    with pytest.raises(HnasError) as info:
        merge(one, eight)
    assert str(info.value) == (
        "cannot merge a LUT at batch 1 with one at batch 8: a LUT is one batch size; merge only "
        "shards profiled with the same --batch"
    )
    merged, _ = merge(eight, Lut(device=dict(HEADER), settings={"batch": 8}, entries={}))
    assert merged.batch == 8


def test_lut_merge_of_two_batches_exits_2_and_writes_nothing(tmp_path):
    a, b = full_lut(tmp_path / "a.json", 1), full_lut(tmp_path / "b.json", 8)
    result = hnas("lut", "merge", a, b, "-o", tmp_path / "ab.json")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot merge a LUT at batch 1 with one at batch 8" in result.stderr
    assert not (tmp_path / "ab.json").exists()


def test_comparing_two_batches_says_in_one_line_what_the_ratios_mean(tmp_path):
    """The same device at two batches compares like two devices: B/A is how cost grows."""
    a, b = full_lut(tmp_path / "b1.json", 1, 0.1), full_lut(tmp_path / "b8.json", 8, 0.4)
    comparison = compare_luts(Lut.load(a), Lut.load(b), PRESET, samples=5)
    assert comparison.batches == (1, 8) and comparison.mixed_batches
    assert comparison.parts_latency.ratio_median == pytest.approx(4.0)
    result = hnas("lut", "compare", a, b, "--space", "avmnist", "--samples", "5")
    assert result.returncode == 0, result.stderr
    assert (
        "A is at batch 1, B at batch 8: figures are per batch, so B/A is how cost grows from "
        "batch 1 to batch 8, not how two devices differ" in result.stdout
    )
    same = hnas("lut", "compare", a, a, "--space", "avmnist", "--samples", "5")
    assert "figures are per batch" not in same.stdout


def test_lut_show_and_predict_name_the_batch(tmp_path):
    path = full_lut(tmp_path / "b8.json", 8)
    shown = hnas("lut", "show", path)
    assert "batch 8" in shown.stdout and "per batch of 8 samples" in shown.stdout
    config = '{"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}'
    priced = hnas("lut", "predict", path, "--space", "avmnist", "--config", config,
                  "--modality", "image")  # fmt: skip
    assert priced.returncode == 0, priced.stderr
    assert "on cpu at batch 8 (figures per batch)" in priced.stdout


# --- TensorRT: the batch is in the engine's input shapes ------------------------------------


def test_a_tensorrt_engine_is_fed_only_its_own_batch():
    check_feed("image", (8, 1, 28, 28), (8, 1, 28, 28))
    with pytest.raises(HnasError) as info:
        check_feed("image", (8, 1, 28, 28), (1, 1, 28, 28))  # numpy would broadcast it
    assert str(info.value) == (
        "input image has shape (1, 1, 28, 28); the engine takes (8, 1, 28, 28) (built at batch "
        "8): feed batches of that size or rebuild the engine"
    )


def test_int8_calibration_steps_are_whole_batches_of_the_engine():
    """The calibrator tells TensorRT the engine's batch and refuses a step of another size (its
    device buffer is sized by the first step)."""
    from hnas_edge.export.tensorrt import entropy_calibrator

    copies: list[int] = []
    cudart = SimpleNamespace(
        cudaMalloc=lambda nbytes: (0, 1000 + nbytes),
        cudaMemcpy=lambda dst, src, nbytes, kind: copies.append(nbytes) or (0,),
        cudaMemcpyKind=SimpleNamespace(cudaMemcpyHostToDevice=1),
    )
    trt = SimpleNamespace(IInt8EntropyCalibrator2=object)
    steps = [{"x": np.zeros((4, 3), np.float32)}, {"x": np.zeros((2, 3), np.float32)}]
    calibrator = entropy_calibrator(trt, cudart, steps, Path("unused.cache"), batch_size=4)
    assert calibrator.get_batch_size() == 4
    assert calibrator.get_batch(["x"]) == [1000 + 48] and copies == [48]
    with pytest.raises(HnasError, match=r"input x has shape \(2, 3\); the engine takes \(4, 3\)"):
        calibrator.get_batch(["x"])


def test_linear_parts_take_a_batch_too():
    assert batched_shapes(LinearSpec(80, 10), 16) == [(16, 80)]
