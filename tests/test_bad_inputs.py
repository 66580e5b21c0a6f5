"""Bad input, file by file and flag by flag: every case is refused by the real `hnas` process with
exit code 2 and one line naming what is wrong (no traceback), and the files that were there before
are left as they were.

The cases are grouped by the kind of input; ``CASES`` counts them per group for the record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fast_device
from test_cli import full_lut, hnas

from hnas_edge.errors import HnasError
from hnas_edge.io import tomllib
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.lut import Lut

FAST_DEVICE = fast_device()


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(tmp_path: Path, *args: str, says: str = "") -> str:
    """Run ``hnas ARGS``; it must exit 2 with one line (containing ``says``) and leave every
    file under ``tmp_path`` as it was. Returns the line."""
    before = files(tmp_path)
    result = hnas(*map(str, args))
    line = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], line[-2000:])
    assert "Traceback" not in result.stderr and len(line.splitlines()) == 1, line
    assert says in line, line
    assert files(tmp_path) == before, "a refused command changed or wrote files"
    return line


def lut_with(tmp_path: Path, edit) -> Path:
    """A complete avmnist LUT, then ``edit(data)`` applied to its JSON."""
    path = full_lut(tmp_path / "cpu.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def first_entry(data: dict) -> dict:
    return next(iter(data["entries"].values()))


# --- 1. the calibration block of a LUT ------------------------------------------------------

CALIBRATIONS = [
    ({"latency": {"a": float("nan"), "fitted_on": 4}}, "calibration.latency.a = nan"),
    ({"latency": {"a": -5, "fitted_on": 4}}, "calibration.latency.a = -5"),
    ({"latency": {"a": "a", "fitted_on": 4}}, "calibration.latency.a = 'a'"),
    ({"latency": {"a": 1, "b": float("inf"), "fitted_on": 4}}, "calibration.latency.b = inf"),
    ({"latency": {"a": 1, "c": [1], "fitted_on": 4}}, "calibration.latency.c = [1]"),
    ({"latency": {"a": 1, "fitted_on": -1}}, "calibration.latency.fitted_on = -1"),
    ({"latency": {"a": 1, "fitted_on": 2.5}}, "calibration.latency.fitted_on = 2.5"),
    ({"energy": {"a": 0, "fitted_on": 4}}, "calibration.energy.a = 0"),
    ({"speed": {"a": 1}}, "calibration = 'speed'"),
    ({"latency": [1, 0, 0]}, "calibration.latency = [1, 0, 0]"),
    ({"latency": {"a": 1, "d": 2}}, "unknown field calibration.latency.d"),
    ([1], "calibration = [1]"),
]


@pytest.mark.parametrize(("calibration", "says"), CALIBRATIONS)
def test_a_malformed_calibration_is_refused_by_every_reader(tmp_path, calibration, says):
    lut = lut_with(tmp_path, lambda d: d.update(calibration=calibration))
    config = '{"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}'
    refused(tmp_path, "lut", "check", lut, "--space", "avmnist", says=says)
    refused(tmp_path, "lut", "predict", lut, "--space", "avmnist", "--config", config,
            "--modality", "image", says=says)  # fmt: skip
    refused(tmp_path, "search", "--lut", lut, "--out", tmp_path / "run", says=says)


# --- 2. LUT entries and metadata ------------------------------------------------------------

LUT_FIELDS = [
    (lambda d: first_entry(d)["latency_ms"].update(median=0), "latency_ms.median = 0"),
    (lambda d: first_entry(d)["latency_ms"].update(median=float("nan")), "median = nan"),
    (lambda d: first_entry(d)["latency_ms"].update(median="1"), "median = '1'"),
    (lambda d: first_entry(d)["latency_ms"].update(std=float("inf")), "latency_ms.std = inf"),
    (lambda d: first_entry(d)["latency_ms"].update(robust_cv="x"), "robust_cv = 'x'"),
    (lambda d: first_entry(d)["latency_ms"].update(n=0), "latency_ms.n = 0"),
    (lambda d: first_entry(d)["energy_mj"].update(total=-1), "energy_mj.total = -1"),
    (lambda d: first_entry(d)["energy_mj"].update(source=5), "energy_mj.source = 5"),
    (lambda d: first_entry(d)["energy_mj"].update(estimate="yes"), "energy_mj.estimate"),
    (lambda d: first_entry(d).update(origin="x"), "origin = 'x'"),
    (lambda d: first_entry(d).update(origin={"kind": 5}), "origin.kind = 5"),
    (lambda d: first_entry(d).update(origin={"kind": "measured", "node": "n"}), "node = 'n'"),
    (lambda d: first_entry(d).update(origin={"node": {"id": 1}}), "origin.node.hostname"),
    (lambda d: d["device"].update(nodes=[1]), "device.nodes = [1]"),
    (lambda d: d["device"].update(nodes={"n1": "x"}), "device.nodes.n1 = 'x'"),
    (lambda d: d["device"].update(name=""), "device.name = ''"),
    (lambda d: d["device"].update(name="../x"), "device.name = '../x'"),
    (lambda d: d["device"].update(runtime=3), "device.runtime = 3"),
    (lambda d: d.update(provenance=[1]), "provenance = [1]"),
    (lambda d: d.update(provenance={"created": 5}), "provenance.created = 5"),
    (lambda d: d.update(settings="x"), "settings = 'x'"),
    (lambda d: d.update(settings={"batch": 0}), "settings.batch = 0"),
    (lambda d: d.update(settings={"batch": "8"}), "settings.batch = '8'"),
    (lambda d: d.update(imported="harmonic-nas"), "imported = 'harmonic-nas'"),
    (lambda d: d.update(imported={"from": 1}), "imported.from = 1"),
    (lambda d: d.update(entries=[]), "entries = []"),
    (lambda d: d.update(device="cpu"), "device = 'cpu'"),
]


@pytest.mark.parametrize(("edit", "says"), LUT_FIELDS)
def test_a_malformed_lut_field_is_named_in_one_line(tmp_path, edit, says):
    refused(tmp_path, "lut", "show", lut_with(tmp_path, edit), says=says)


# --- 3. device TOML -------------------------------------------------------------------------

DEVICE_TOMLS = [
    ("[timing]\nmin_time_s = inf", "timing.min_time_s = inf"),
    ("[timing]\nwarmup_s = nan", "timing.warmup_s = nan"),
    ("[timing]\nwarmup_s = -1.0", "timing.warmup_s = -1.0"),
    ("[timing]\nmin_iters = 100000000000", "timing.min_iters = 100000000000"),
    ("[timing]\nmax_cv = nan", "timing.max_cv = nan"),
    ("[timing]\nretries = 1.5", "timing.retries = 1.5"),
    ("[timing]\nquiet_tolerance = -0.1", "timing.quiet_tolerance = -0.1"),
    ("nominal_power_w = nan", "nominal_power_w = nan"),
    ("nominal_power_w = inf", "nominal_power_w = inf"),
    ("nominal_power_w = 0", "nominal_power_w = 0"),
    ('name = ""', "name = ''"),
    ('name = "../../x"', "name = '../../x'"),
    ('name = "a\\\\b"', "name = 'a\\\\b'"),
    ("threads = true", "threads = True"),
    ('runtime = "tflite"', "runtime = 'tflite'"),
    ("timing = 3", "timing = 3"),
    ("colour = 1", "unknown field colour"),
    ("reference_every = -1", "reference_every = -1"),
    ('pin_core = "yes"', "pin_core = 'yes'"),
]


def device_toml(tmp_path: Path, override: str) -> Path:
    """FAST_DEVICE with the lines of ``override`` in place of the fields they set."""
    lines = FAST_DEVICE.splitlines()
    table = "[timing]" if override.startswith("[timing]") else ""
    set_here = [line.split("=")[0].strip() for line in override.splitlines() if "=" in line]
    kept, section = [], ""
    for line in lines:
        section = line if line.startswith("[") else section
        if "=" in line and line.split("=")[0].strip() in set_here and section == table:
            continue
        if override.startswith("timing =") and (line == "[timing]" or section == "[timing]"):
            continue
        kept.append(line)
    body = [x for x in override.splitlines() if x != "[timing]"]
    if table:
        kept += body
    else:
        kept = body + kept
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(kept) + "\n")
    return path


@pytest.mark.parametrize(("override", "says"), DEVICE_TOMLS)
def test_a_device_toml_out_of_range_is_refused_before_profiling(tmp_path, override, says):
    device = device_toml(tmp_path, override)
    refused(tmp_path, "profile", "--device", device, "--limit", "1", "--out", tmp_path / "o.json",
            says=says)  # fmt: skip
    assert not (tmp_path.parent / "x.json").exists()


def test_a_device_toml_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "mine.toml").write_bytes(b'name = "\xff"\n')
    refused(tmp_path, "profile", "--device", tmp_path / "mine.toml", "--out", tmp_path / "o.json",
            says="not valid TOML")  # fmt: skip


# --- 4. resuming with other inputs ----------------------------------------------------------

RESUME_CHANGES = [
    ("threads = 2", "threads 1 → 2"),
    ("[timing]\nmin_iters = 7", "timing.min_iters 5 → 7"),
    ("nominal_power_w = 12.0", "nominal_power_w 10.0 → 12.0"),
    ('meter = "rapl"', "meter 'estimate' → 'rapl'"),
    ('precision = "fp16"', "not ('cpu', 'onnxruntime', 'fp16')"),
]


@pytest.mark.parametrize(("override", "says"), RESUME_CHANGES)
def test_profile_resume_refuses_changed_measurement_settings(tmp_path, override, says):
    old = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "old")
    out = tmp_path / "lut.json"
    header = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}
    Lut(device={**header, "profile": old.to_dict()}).save(out)
    device = device_toml(tmp_path, override)
    refused(tmp_path, "profile", "--device", device, "--out", out, "--resume", says=says)


def fake_supernets(folder: Path, tag: bytes = b"w") -> Path:
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps({"preset": "avmnist"}))
    for modality in ("image", "audio"):
        (folder / modality).mkdir()
        (folder / modality / "supernet.pt").write_bytes(tag)
    return folder


@pytest.fixture
def resumable(tmp_path):
    """A search state in OUT made with cpu.json, supernets sn and avdigits."""
    from conftest import tiny

    from hnas_edge.search.context import SearchInputs
    from hnas_edge.search.engine import input_record, start_state

    lut = full_lut(tmp_path / "cpu.json")
    inputs = SearchInputs(fake_supernets(tmp_path / "sn"), "avdigits", None, lut, tiny(),
                          tmp_path / "out")  # fmt: skip
    inputs.out.mkdir()
    state = start_state(inputs.config, input_record(inputs))
    (inputs.out / "state.json").write_text(json.dumps(state.to_dict(inputs.config)))
    return inputs


def other_lut(inputs):
    return {"lut": full_lut(inputs.out.parent / "other.json", latency=0.2)}


def edited_lut(inputs):
    lut = Lut.load(inputs.lut)
    lut.calibration["latency"] = type(lut.calibration_for("latency"))(2.0, 0, 0, 8)
    lut.save(inputs.lut)
    return {}


SEARCH_CHANGES = [
    (other_lut, "--lut"),
    (edited_lut, "--lut"),
    (lambda i: {"supernets": fake_supernets(i.out.parent / "sn2", b"v")}, "--supernets"),
    (lambda i: {"dataset": "avmnist"}, "--dataset avmnist"),
    (lambda i: {"data_dir": str(i.out.parent)}, "--data-dir"),
]


@pytest.mark.parametrize(("change", "says"), SEARCH_CHANGES)
def test_search_resume_refuses_other_inputs_naming_them(resumable, change, says):
    from dataclasses import replace

    from hnas_edge.search.engine import load_state

    inputs = replace(resumable, **change(resumable))
    before = files(inputs.out)
    with pytest.raises(HnasError, match="was searched with other inputs") as info:
        load_state(inputs, resume=True)
    assert says in str(info.value) and "\n" not in str(info.value)
    assert files(inputs.out) == before


# --- 5. flags -------------------------------------------------------------------------------

FLAGS = [
    (["train", "--limit", "0"], "--limit"),
    (["train", "--limit", "-5"], "--limit"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--threads", "0"], "--threads"),
    (["search", "--lut", "x.json", "--lr-weights", "nan"], "--lr-weights"),
    (["search", "--lut", "x.json", "--lr-arch", "0"], "--lr-arch"),
    (["search", "--lut", "x.json", "--workers", "0"], "--workers"),
    (["search", "--lut", "x.json", "--quartile", "0"], "--quartile"),
    (["search", "--lut", "x.json", "--mutation", "1.5"], "--mutation"),
    (["search", "--lut", "x.json", "--crossover", "nan"], "--crossover"),
    (["search", "--lut", "x.json", "--a", "inf"], "--a"),
    (["search", "--lut", "x.json", "--hw-weight", "nan"], "--hw-weight"),
    (["search", "--lut", "x.json", "--hw-weight", "-1"], "--hw-weight"),
    (["search", "--lut", "x.json", "--task-cpus", "nan"], "--task-cpus"),
    (["search", "--lut", "x.json", "--population", "1"], "--population"),
    (["search", "--lut", "x.json", "--darts-epochs", "-1"], "--darts-epochs"),
    (["profile", "--device", "cpu", "--limit", "0"], "--limit"),
    (["profile", "--device", "cpu", "--seed", "-1"], "--seed"),
    (["profile", "--device", "cpu", "--validate", "-1"], "--validate"),
    (["profile", "--device", "cpu", "--batch", "0"], "--batch"),
    (["lut", "compare", "a.json", "b.json", "--space", "avmnist", "--samples", "0"], "--samples"),
]


@pytest.mark.parametrize(("args", "says"), FLAGS)
def test_a_flag_out_of_range_is_refused_before_any_work(tmp_path, args, says):
    out = tmp_path / "out"
    extra = [] if args[0] in ("lut", "profile") else ["--out", out]
    refused(tmp_path, *args, *extra, says=f"Invalid value for '{says}'")
    assert not out.exists()


def test_validate_refuses_fewer_networks_than_a_held_out_fit_needs(tmp_path):
    lut = full_lut(tmp_path / "cpu.json")
    refused(tmp_path, "lut", "validate", lut, "--device", "cpu", "--samples", "4",
            says="--samples 4 is too few for a held-out fit: give at least 8")  # fmt: skip


def test_profile_validate_refuses_too_few_networks_before_measuring(tmp_path):
    refused(tmp_path, "profile", "--device", "cpu", "--validate", "3", "--out",
            tmp_path / "o.json", says="--validate 3 is too few for a held-out fit")  # fmt: skip
    assert not (tmp_path / "o.json").exists()


def test_deploy_refuses_a_bench_of_fewer_than_two_runs(tmp_path, model):
    refused(tmp_path, "deploy", model, "--bench", "1", says="Invalid value for '--bench'")


# --- 6. JSON nested deeper than any file of ours --------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


def test_deeply_nested_json_is_refused_by_every_reader(tmp_path, model):
    says = "nests lists/objects deeper than 64 levels"
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    refused(tmp_path, "lut", "show", deep, says=says)
    refused(tmp_path, "lut", "predict", deep, "--space", "avmnist", "--config", "{}", says=says)
    lut = full_lut(tmp_path / "cpu.json")
    refused(tmp_path, "lut", "predict", lut, "--space", "avmnist", "--config", deep, says=says)
    inline = '{"a": ' + DEEP + "}"
    refused(tmp_path, "lut", "predict", lut, "--space", "avmnist", "--config", inline, says=says)
    result = tmp_path / "result"
    result.mkdir()
    (result / "front.json").write_text(DEEP)
    refused(tmp_path, "export", result / "m1", says=says)
    model.with_name(model.name + ".json").write_text('{"inputs": ' + DEEP + "}")
    refused(tmp_path, "deploy", model, "--bench", "2", says=says)


CASES_DEEP = 6


# --- 7. architecture JSON -------------------------------------------------------------------


def arch(**change):
    from hnas_edge.space.mmnn import random_arch
    from hnas_edge.space.presets import get_preset

    data = random_arch(get_preset("avmnist"), rng=1).to_dict()
    data.update(change)
    return data


def genotype_with(index):
    data = arch()
    data["fusion"]["genotype"]["cells"][0]["inputs"] = [index, 0]
    return data


def memes_text(config):
    from hnas_edge.space.mmnn import random_arch
    from hnas_edge.space.presets import get_preset

    data = random_arch(get_preset("memes"), rng=1).to_dict()
    data["backbones"]["text"] = config
    return data


ARCHITECTURES = [
    (arch(preset=["avmnist"]), "unknown space ['avmnist']"),
    (arch(preset=None), "unknown space None"),
    (arch(backbones=[1, 2]), "architecture backbones"),
    (arch(fusion=[1]), 'architecture "fusion"'),
    ({**arch(), "fusion": {"cells": float("inf"), "nodes": 1}}, "fusion cells = inf"),
    ({**arch(), "fusion": {"cells": 1, "nodes": [1]}}, "fusion nodes = [1]"),
    (genotype_with(float("inf")), "bad fusion genotype (OverflowError"),
    (genotype_with("x"), "bad fusion genotype (ValueError"),
    (memes_text([1]), "its config is {}, got [1]"),
    (memes_text("x"), "its config is {}, got 'x'"),
    ([1, 2], "a backbone config is an object"),
    ({"ks": [float("inf")] * 4, "e": [3] * 4, "d": [2]}, "config ks[0] = inf"),
]


@pytest.mark.parametrize(("config", "says"), ARCHITECTURES)
def test_a_malformed_architecture_is_refused_naming_the_field(tmp_path, config, says):
    space = "memes" if "text" in str(config) else "avmnist"
    lut = full_lut(tmp_path / "lut.json", space=space)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(config))
    refused(tmp_path, "lut", "predict", lut, "--space", space, "--config", path,
            "--modality", "image", says=says)  # fmt: skip


# --- 8. export: front.json and checkpoint ---------------------------------------------------


def result_dir(tmp_path: Path, front_edit=None, checkpoint=None) -> Path:
    """A result folder with front.json naming model m1 and its checkpoint."""
    from hnas_edge.space.mmnn import build_fresh, random_arch
    from hnas_edge.space.presets import get_preset
    from hnas_edge.train import checkpoint as ckpt

    result = tmp_path / "result"
    (result / "models" / "m1").mkdir(parents=True)
    preset = get_preset("avmnist")
    architecture = random_arch(preset, rng=2)
    model = {"id": "m1", "checkpoint": "models/m1/model.pt", "latency_ms": 0.5,
             "energy_mj": 1.0, "val_metric": 0.9, "test_metric": 0.8}  # fmt: skip
    front = {"dataset": "avdigits", "metric": "accuracy", "lut": {"device": "cpu"},
             "models": [model]}  # fmt: skip
    if front_edit:
        front_edit(front)
    (result / "front.json").write_text(json.dumps(front))
    if checkpoint is None:
        net = build_fresh(preset, architecture)
        checkpoint = {"architecture": json.dumps(architecture.to_dict()),
                      "state_dict": net.state_dict()}  # fmt: skip
    ckpt.save(result / "models" / "m1" / "model.pt", checkpoint)
    return result


EXPORTS = [
    (lambda f: f.update(models={"m1": 1}), None, "models = {'m1': 1}"),
    (lambda f: f.update(models=["m1"]), None, "models[0] = 'm1'"),
    (lambda f: f["models"][0].update(checkpoint=5), None, "models[0].checkpoint = 5"),
    (lambda f: f["models"][0].update(checkpoint="../../x.pt"), None, "checkpoint = '../../x.pt'"),
    (lambda f: f["models"][0].update(latency_ms="fast"), None, "models[0].latency_ms = 'fast'"),
    (lambda f: f["models"][0].update(val_metric=float("nan")), None, "val_metric = nan"),
    (lambda f: f.update(dataset=["avdigits"]), None, "dataset = ['avdigits']"),
    (lambda f: f.update(lut="cpu.json"), None, "lut = 'cpu.json'"),
    (lambda f: f.pop("metric"), None, "metric is missing"),
    (None, {"architecture": 5, "state_dict": {}}, "architecture = 5"),
    (None, {"architecture": "{", "state_dict": {}}, "architecture is not valid JSON"),
    (None, {"architecture": json.dumps([1]), "state_dict": {}}, "an architecture is"),
    (None, {"architecture": json.dumps(arch()), "state_dict": [1]}, "state_dict = [1]"),
    (None, {"state_dict": {}}, "architecture is missing"),
    (None, [1, 2], "top level = [1, 2]"),
]


@pytest.mark.parametrize(("front_edit", "checkpoint", "says"), EXPORTS)
def test_export_refuses_a_malformed_result_naming_the_field(tmp_path, front_edit, checkpoint,
                                                            says):  # fmt: skip
    result = result_dir(tmp_path, front_edit, checkpoint)
    refused(tmp_path, "export", result / "m1", "-o", tmp_path / "m.onnx", says=says)
    assert not (tmp_path / "m.onnx").exists()


# --- 9. deploy: the sidecar -----------------------------------------------------------------


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = torch.nn.Linear(28 * 28, 10)
        self.audio = torch.nn.Linear(20 * 20, 10)

    def forward(self, image, audio):
        return self.image(image.flatten(1)) + self.audio(audio.flatten(1))


SIDECAR = {
    "inputs": [
        {"name": "image", "shape": [1, 1, 28, 28], "dtype": "float32"},
        {"name": "audio", "shape": [1, 1, 20, 20], "dtype": "float32"},
    ],
    "output": {"name": "output", "shape": [1, 10], "task": "multiclass"},
}


@pytest.fixture
def model(tmp_path):
    """A two-input ONNX model (image 1×28×28, audio 1×20×20) with a valid sidecar."""
    from hnas_edge.backend.onnx import export_onnx

    example = {"image": torch.zeros(1, 1, 28, 28), "audio": torch.zeros(1, 1, 20, 20)}
    path = export_onnx(TwoInputs(), example, tmp_path / "m.onnx")
    path.with_name("m.onnx.json").write_text(json.dumps(SIDECAR))
    return path


def inputs_with(**change):
    side = json.loads(json.dumps(SIDECAR))
    side["inputs"][0].update(change)
    return side


def at_batch_2():
    """The sidecar of a batch-2 export, beside a graph that takes batch 1."""
    side = json.loads(json.dumps(SIDECAR))
    for item in side["inputs"]:
        item["shape"][0] = 2
    return {**side, "batch": 2}


SIDECARS = [
    ([1, 2], "top level = [1, 2]"),
    ({"output": SIDECAR["output"]}, "inputs is missing"),
    ({**SIDECAR, "inputs": []}, "inputs = []"),
    ({**SIDECAR, "inputs": {"image": 1}}, "inputs = {'image': 1}"),
    ({**SIDECAR, "inputs": ["image"]}, "inputs[0] = 'image'"),
    (inputs_with(name="picture"), "takes input 'image', which its sidecar does not declare"),
    (inputs_with(name=""), "inputs[0].name = ''"),
    (inputs_with(shape="1x28x28"), "inputs[0].shape = '1x28x28'"),
    (inputs_with(shape=[1, 1, 28, -28]), "inputs[0].shape[3] = -28"),
    (inputs_with(shape=[1, 1, 28, 27]), "its sidecar declares [1, 1, 28, 27]"),
    (inputs_with(shape=[1, 1, 28]), "its sidecar declares [1, 1, 28]"),
    (inputs_with(shape=[0, 1, 28, 28]), "inputs[0].shape[0] = 0"),
    ({**SIDECAR, "output": {"task": "regression"}}, "output.task = 'regression'"),
    ({**SIDECAR, "predicted": {"latency_ms": "1"}}, "predicted.latency_ms = '1'"),
    ({**SIDECAR, "batch": 0}, "batch = 0"),
    ({**SIDECAR, "batch": 2}, 'inputs[0].shape[0] = 1; allowed: 2 (the batch) or "batch"'),
    (at_batch_2(), "takes image of shape [1, 1, 28, 28]; its sidecar declares [2, 1, 28, 28]"),
]


@pytest.mark.parametrize(("sidecar", "says"), SIDECARS)
def test_deploy_refuses_a_malformed_sidecar_naming_the_field(tmp_path, model, sidecar, says):
    model.with_name("m.onnx.json").write_text(json.dumps(sidecar))
    refused(tmp_path, "deploy", model, "--bench", "2", says=says)


def test_deploy_refuses_a_sidecar_that_is_not_utf8(tmp_path, model):
    model.with_name("m.onnx.json").write_bytes(b'{"inputs": "\xff"}')
    refused(tmp_path, "deploy", model, "--bench", "2", says="is not UTF-8 text")


# --- 10. deploy --input ---------------------------------------------------------------------

IMAGE = np.zeros((2, 1, 28, 28), np.float32)
AUDIO = np.zeros((2, 1, 20, 20), np.float32)


def npy(path):
    np.save(path.with_suffix(".npy"), IMAGE)
    return path.with_suffix(".npy")


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


NPZS = [
    (npy, "is a single array, not an .npz"),
    (lambda p: npz(p, image=IMAGE[:0], audio=AUDIO[:0]), "rows per array"),
    (lambda p: npz(p, image=IMAGE, audio=AUDIO[:1]), "rows per array {'image': 2, 'audio': 1}"),
    (lambda p: npz(p), "holds no arrays"),
    (lambda p: npz(p, image=IMAGE), "do not match the model's"),
    (lambda p: npz(p, image=np.float32(1), audio=AUDIO), "rows per array"),
    (lambda p: (p.write_text("not a zip"), p)[1], "is not a readable .npz"),
    (lambda p: npz(p, image=np.array([{}] * 2, dtype=object), audio=AUDIO), "not a readable"),
    (lambda p: tmp_absent(p), "no such file"),
]


def tmp_absent(path):
    return path.with_name("absent.npz")


@pytest.mark.parametrize(("write", "says"), NPZS)
def test_deploy_input_refuses_a_bad_npz(tmp_path, model, write, says):
    refused(tmp_path, "deploy", model, "--input", write(tmp_path / "in.npz"), says=says)


def test_deploy_warns_of_non_finite_inputs_and_still_predicts(tmp_path, model):
    image = IMAGE.copy()
    image[0, 0, 0, 0] = np.nan
    path = npz(tmp_path / "in.npz", image=image, audio=AUDIO)
    result = hnas("deploy", str(model), "--input", str(path))
    assert result.returncode == 0, result.stderr
    assert "holds non-finite values (NaN or infinity; image: 1)" in result.stderr
    assert len(result.stdout.split()) == 2


# --- 11. a busy machine ---------------------------------------------------------------------


def test_profile_records_the_machines_load_before_and_after(tmp_path):
    device = tmp_path / "fast.toml"
    device.write_text(FAST_DEVICE)
    out = tmp_path / "lut.json"
    result = hnas("profile", "--device", str(device), "--limit", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    load = Lut.load(out).extra["load"]
    for when in ("before", "after"):
        assert set(load[when]) == {"load_average", "cpus", "others_cpu_share"}
        assert 0 <= load[when]["others_cpu_share"] <= 1


def test_a_busy_machine_is_named_with_what_to_do():
    from hnas_edge.profiling.state import load_warnings

    busy = {"load_average": [3.5, 2.0, 1.0], "cpus": 2, "others_cpu_share": 0.8}
    idle = {**busy, "others_cpu_share": 0.01}
    (line,) = load_warnings({"before": busy, "after": idle})
    assert line.startswith("warning: the machine was busy before measuring (other processes used")
    assert "80% of its 2 CPUs, load average 3.50" in line and "measure again" in line
    assert load_warnings({"before": idle, "after": idle}) == []


def test_validate_says_plainly_when_fidelity_after_calibration_is_low(tmp_path):
    from rich.console import Console

    from hnas_edge.profiling.fidelity import Fidelity
    from hnas_edge.profiling.lut import Calibration
    from hnas_edge.profiling.validate import MetricReport, ValidationReport
    from hnas_edge.ui.lut import print_validation

    def report(within_10, others_cpu_share=0.0):
        fit = Fidelity(4, within_10, within_10, 0.5, 0.2)
        load = {"before": {"others_cpu_share": others_cpu_share, "cpus": 2}}
        return ValidationReport((), MetricReport(Calibration(), fit, fit), None, load)

    console = Console(record=True, width=300)
    print_validation(console, report(0.5, others_cpu_share=0.6), tmp_path / "cpu.json")
    text = console.export_text()
    assert "after calibration 50% of the held-out networks are within ±10%" in text
    assert "(below 90%)" in text and "re-measure on an idle machine" in text
    console = Console(record=True, width=300)  # idle: load is not the cause, so no such advice
    print_validation(console, report(0.5), tmp_path / "cpu.json")
    text = console.export_text()
    assert "fidelity is low" in text and "re-measure on an idle machine" not in text
    assert "the machine was not busy" in text and "slow spells" in text
    console = Console(record=True, width=300)
    print_validation(console, report(0.95), tmp_path / "cpu.json")
    assert "fidelity is low" not in console.export_text()


#: How many bad inputs each group tries (the report of issue 17 quotes these).
CASES = {
    "calibration (x3 readers)": len(CALIBRATIONS) * 3,
    "LUT entries and metadata": len(LUT_FIELDS),
    "device TOML": len(DEVICE_TOMLS) + 1,
    "resume": len(RESUME_CHANGES) + len(SEARCH_CHANGES),
    "flags": len(FLAGS) + 2,
    "nested JSON": CASES_DEEP,
    "architecture JSON": len(ARCHITECTURES),
    "export (front.json, checkpoint)": len(EXPORTS),
    "deploy sidecar": len(SIDECARS) + 1,
    "deploy --input": len(NPZS),
}


def test_every_group_of_the_corpus_tries_several_cases():
    assert min(CASES.values()) >= 5, CASES
