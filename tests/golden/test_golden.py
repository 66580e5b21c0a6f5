"""Golden tests: what the toolchain computes and prints, pinned before the redesign of issue 15
(backend layer, UI apart, typed search records) so that the move provably changes no behaviour.

Each test compares with a file under ``tests/golden/expected/``: the keys every space needs and
their specs, the costs two real LUTs predict for seeded architectures, the text of ``hnas lut
show/check/predict``, the front of a seeded tiny search and its candidates, and an exported model
(its sidecar, its graph, its outputs). Floats are compared to 1e-9 relative (the sum of the same
figures in another order may differ in the last bit); everything else exactly.

``data/cpu-measured.json`` is a real LUT of this project (``hnas profile --device cpu --validate``
on a 2-core machine, drift-corrected, per-kind calibration); ``data/cpu-transferred.json`` is a
real ``hnas lut transfer`` from a 2-thread cpu LUT to it. Neither is re-measured here.

A deliberate change of behaviour rewrites the expected files with
``HNAS_UPDATE_GOLDEN=1 python -m pytest tests/golden``; the diff of those files is then the
change, to be read and explained in the commit.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PRESET, read_front

from hnas_edge.space.mmnn import MultimodalArch, arch_parts, random_arch
from hnas_edge.space.presets import PRESETS, get_preset

HERE = Path(__file__).parent
DATA = HERE / "data"
EXPECTED = HERE / "expected"
UPDATE = os.environ.get("HNAS_UPDATE_GOLDEN") == "1"
LUTS = ("cpu-measured.json", "cpu-transferred.json")
ACCOUNTINGS = ("ours", "paper")

#: Fields that say when, where, how fast and by what command a file was made: not behaviour.
VOLATILE = {"created", "host", "platform", "command", "versions", "provenance", "load", "seconds"}
VOLATILE_SUFFIX = "_seconds"

pytestmark = pytest.mark.usefixtures("one_thread")


def hnas_in(folder: Path, *args: object) -> subprocess.CompletedProcess:
    """The console entry point run in ``folder``, so that printed paths are relative."""
    return subprocess.run(
        [sys.executable, "-c", "from hnas_edge.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
        env={**os.environ, "COLUMNS": "200"},
    )


def same(actual: Any, expected: Any, where: str = "$") -> None:
    """Equal, floats to 1e-9 relative; the first difference named by its JSON path."""
    if isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, (int, float)) and isinstance(expected, (int, float)), where
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), (
            f"{where}: {actual!r} != {expected!r}"
        )
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {type(actual).__name__} is not an object"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {type(actual).__name__} is not a list"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def golden_json(name: str, actual: Any, atol: float | None = None) -> None:
    """``actual`` equals the expected file (as :func:`same`, or within ``atol`` for an array of
    outputs computed by another library, whose kernels may round otherwise)."""
    path = EXPECTED / name
    actual = json.loads(json.dumps(actual))  # tuples as lists, as read back
    if UPDATE:
        path.write_text(json.dumps(actual, indent=1) + "\n")
        return
    expected = json.loads(path.read_text())
    if atol is None:
        same(actual, expected)
    else:
        np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=0, atol=atol)


def golden_text(name: str, actual: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.write_text(actual)
        return
    assert actual == path.read_text()


def stable(record: Any, temp: Path) -> Any:
    """``record`` without the fields that say when and where it was made; a path in the test
    session's temporary folder written ``TMP/NAME`` (its folder is numbered by pytest)."""
    if isinstance(record, dict):
        return {
            k: stable(v, temp)
            for k, v in record.items()
            if k not in VOLATILE and not k.endswith(VOLATILE_SUFFIX)
        }
    if isinstance(record, list):
        return [stable(v, temp) for v in record]
    if isinstance(record, str) and record.startswith(str(temp)):
        return f"TMP/{Path(record).name}"
    return record


@pytest.fixture
def temp(tmp_path_factory):
    return tmp_path_factory.getbasetemp()


# --- LUT keys and predicted costs --------------------------------------------------------------


@pytest.mark.parametrize("space", sorted(PRESETS))
def test_the_parts_a_space_needs_keep_their_keys_specs_and_sizes(space):
    preset = get_preset(space)
    parts = {
        spec.key: {
            "spec": spec.to_dict(),
            "macs": spec.macs(),
            "inputs": [list(s) for s in spec.input_shapes()],
            "output": list(spec.output_shape()),
        }
        for spec in preset.all_specs()
    }
    required = {a: [spec.key for spec in preset.required_specs(a)] for a in ACCOUNTINGS}
    golden_json(f"keys-{space}.json", {"all": parts, "required": required})


def priced(lut_name: str, accounting: str, n: int = 12) -> list[dict[str, Any]]:
    from hnas_edge.profiling.cost import predict
    from hnas_edge.profiling.lut import Lut

    lut = Lut.load(DATA / lut_name)
    rows = []
    for seed in range(n):
        arch = random_arch(PRESET, rng=seed)
        cost = predict(lut, arch_parts(PRESET, arch, accounting))
        rows.append(
            {
                "seed": seed,
                "parts": [[p.key, p.latency_ms, p.energy_mj] for p in cost.parts],
                "latency_sum_ms": cost.latency_sum_ms,
                "energy_sum_mj": cost.energy_sum_mj,
                "latency_ms": cost.latency_ms,
                "energy_mj": cost.energy_mj,
                "calibrated": cost.calibrated,
                "energy_is_estimate": cost.energy_is_estimate,
            }
        )
    return rows


@pytest.mark.parametrize("accounting", ACCOUNTINGS)
@pytest.mark.parametrize("lut", LUTS)
def test_a_lut_predicts_the_same_costs_for_seeded_networks(lut, accounting):
    golden_json(f"predicted-{Path(lut).stem}-{accounting}.json", priced(lut, accounting))


# --- the CLI's LUT commands ---------------------------------------------------------------------


@pytest.mark.parametrize("lut", LUTS)
def test_lut_show_prints_the_same_summary(lut):
    result = hnas_in(DATA, "lut", "show", lut)
    assert result.returncode == 0, result.stderr
    golden_text(f"lut-show-{Path(lut).stem}.txt", result.stdout)


@pytest.mark.parametrize(
    ("space", "accounting", "code"),
    [("avmnist", "ours", 0), ("avmnist", "paper", 0), ("memes", "ours", 1), ("mmimdb", "paper", 1)],
)
def test_lut_check_prints_the_same_coverage(space, accounting, code):
    result = hnas_in(DATA, "lut", "check", LUTS[0], "--space", space, "--accounting", accounting)
    assert result.returncode == code, result.stderr
    golden_text(f"lut-check-{space}-{accounting}.txt", result.stdout)


def test_lut_predict_prints_the_same_prices(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(random_arch(PRESET, rng=3).to_dict()))
    backbone = '{"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}'
    runs = [
        ("network-ours", LUTS[0], "--config", arch, "--accounting", "ours"),
        ("network-paper", LUTS[1], "--config", arch, "--accounting", "paper"),
        ("backbone", LUTS[0], "--config", backbone, "--modality", "image"),
    ]
    for name, lut, *args in runs:
        result = hnas_in(DATA, "lut", "predict", lut, "--space", "avmnist", *args)
        assert result.returncode == 0, result.stderr
        golden_text(f"lut-predict-{name}.txt", result.stdout.replace(str(arch), "ARCH"))


# --- a seeded tiny search and its export --------------------------------------------------------


def test_a_seeded_tiny_search_finds_the_same_front(finished, temp):
    golden_json("front.json", stable(read_front(finished), temp))


def test_a_seeded_tiny_search_scores_the_same_candidates(finished, temp):
    with open(finished / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    golden_json("candidates.json", stable(rows, temp))


def test_the_exported_model_has_the_same_sidecar_graph_and_outputs(finished, tmp_path, temp):
    import onnx
    import onnxruntime as ort

    model_id = read_front(finished)["models"][0]["id"]
    out = tmp_path / "m.onnx"
    result = hnas_in(tmp_path, "export", finished / model_id, "--format", "onnx", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} and m.onnx.json; max |diff| against torch ")
    written = json.loads((tmp_path / "m.onnx.json").read_text())
    sidecar = stable(written, temp)
    sidecar["check"].pop("max_abs_diff")  # checked below, against a bound
    graph = onnx.load(out).graph
    rng = np.random.default_rng(0)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for i in graph.input
    }
    (logits,) = session.run(None, inputs)
    golden_json(
        "export.json",
        {
            "sidecar": sidecar,
            "nodes": [node.op_type for node in graph.node],
            "inputs": [i.name for i in graph.input],
            "outputs": [o.name for o in graph.output],
        },
    )
    # the network was trained by the seeded search: CPUs with other vector units (an AMD EPYC
    # with AVX-512 vs the Intel with AMX these were written on) round its training's sums
    # otherwise, which moved these logits by up to 4.1e-4 with the same front and scores
    golden_json("export-logits.json", logits.tolist(), atol=2e-3)
    assert written["check"]["max_abs_diff"] <= 1e-4


def test_the_front_models_rebuild_from_their_architectures(finished):
    """The front's architectures still parse and price the same (a cross-check of the above)."""
    for model in read_front(finished)["models"]:
        arch = MultimodalArch.from_dict(model["architecture"])
        assert arch.to_dict() == model["architecture"]
        assert len(arch_parts(PRESET, arch)) > 0
