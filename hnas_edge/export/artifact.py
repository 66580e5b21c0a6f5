"""`hnas export`: a front model → ONNX, onnxruntime-optimised (ORT) or TensorRT plan, each with a
sidecar JSON (``FILE.json``) saying what the file expects and what the search promised of it.

Every artifact is checked before it is kept: ONNX and ORT against torch, the plan against
onnxruntime, on real samples of the dataset's test split.

The graph takes the batch of the LUT the model was searched against (front.json's ``lut.batch``;
1 for a search made before LUTs had batch sizes): that is the batch its predicted cost is for,
which the sidecar records (``batch``) and ``hnas deploy --bench`` runs at. Another ``--batch`` is
refused: nothing predicted the cost of that graph.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hnas_edge.backend.onnx import OPSET, export_onnx, onnx_parity, run_onnx
from hnas_edge.backend.onnxruntime import ort_session
from hnas_edge.data import load_dataset
from hnas_edge.data.base import MultimodalDataset
from hnas_edge.errors import ConfigError, HnasError
from hnas_edge.export.searched import SearchedModel
from hnas_edge.io import atomic_write_bytes, atomic_write_json, provenance
from hnas_edge.outputs import claim_output
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.train.batches import modality_tensors

FORMATS = ("onnx", "ort", "plan")
SUFFIXES = {"onnx": ".onnx", "ort": ".ort", "plan": ".plan"}
PARITY_SAMPLES = 16  # at least; rounded up to whole batches
PARITY_TOLERANCE = 1e-4
CALIBRATION_SAMPLES = 256  # INT8 calibration samples from the training split, in batches


@dataclass(frozen=True)
class ExportReport:
    path: Path
    sidecar: Path
    format: str
    max_abs_diff: float
    checked_against: str


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


@functools.lru_cache(maxsize=4)
def _split(dataset: str, data_dir: str | None, split: str) -> MultimodalDataset:
    return load_dataset(dataset, data_dir, split=split)


def model_split(model: SearchedModel, split: str) -> MultimodalDataset:
    """A split of the dataset ``model`` was searched on (loaded once per export), refused if its
    samples are not the sizes the model takes (the folder may have changed since the search)."""
    data = _split(model.result["dataset"], model.result.get("data_dir"), split)
    check_dataset_shapes(model.net.preset, data)
    return data


def sample_inputs(
    model: SearchedModel, n: int = PARITY_SAMPLES, split: str = "test"
) -> dict[str, torch.Tensor]:
    """The first ``n`` samples of ``split``, preprocessed as the search saw them."""
    data = model_split(model, split)
    return {m: modality_tensors(data, m, n)[0].float() for m in model.net.modalities}


def describe_inputs(model: SearchedModel, batch: int | str) -> list[dict[str, Any]]:
    data = model_split(model, "test")
    return [
        {
            "name": m,
            "shape": [batch, *data.input_shapes[m]],
            "dtype": "float32",
            "normalization": data.stats[m].to_dict() if m in data.stats else None,
        }
        for m in model.net.modalities
    ]


def searched_batch(model: SearchedModel) -> int:
    """The batch the model's predicted cost is for: its LUT's (1 for an older front.json)."""
    return int(model.result["lut"].get("batch") or 1)


def export_batch(model: SearchedModel, batch: int | None) -> int:
    """``--batch`` (default: the LUT's), refused where it is not the batch the LUT priced."""
    priced = searched_batch(model)
    if batch is None or batch == priced:
        return priced
    raise ConfigError(
        f"--batch {batch}: {model.id} was searched against a LUT at batch {priced}, so its "
        f"predicted cost is for batch {priced}; export at --batch {priced} (the default), or "
        f"profile a LUT with --batch {batch} and search with it"
    )


def sidecar(
    model: SearchedModel, fmt: str, report: dict[str, Any], batch: int, dynamic: bool = False
) -> dict:
    result = model.result
    n_classes = model.net.preset.n_classes
    graph_batch: int | str = "batch" if dynamic else batch
    return {
        "format": fmt,
        "model_id": model.id,
        "batch": batch,  # what `predicted` is per call of, and what `deploy --bench` runs at
        "inputs": describe_inputs(model, graph_batch),
        "preprocessing": "x = (raw - mean) / std per channel, with the normalization above "
        "(what `hnas_edge.data.load_dataset` applies); arrays float32, batch first",
        "output": {
            "name": "output",
            "shape": [graph_batch, n_classes],
            "task": model.net.preset.task,
            "labels": [str(i) for i in range(n_classes)],
        },
        "dataset": result["dataset"],
        "data_dir": result.get("data_dir"),
        "architecture": model.arch.to_dict(),
        "searched_for": result["lut"],
        "search_mode": result.get("mode"),
        "predicted": {
            "latency_ms": model.record["latency_ms"],
            "energy_mj": model.record["energy_mj"],
        },
        "search_metrics": {
            "metric": result["metric"],
            "val_metric": model.record["val_metric"],
            "test_metric": model.record["test_metric"],
            "samples_limit": result.get("samples_limit"),  # None: whole splits
        },
        "check": report,
        "opset": OPSET,
        "provenance": provenance({"format": fmt}),
    }


def export_model(
    model: SearchedModel,
    fmt: str,
    out: Path,
    precision: str = "fp32",
    dynamic_batch: bool = False,
    batch: int | None = None,
    force: bool = False,
) -> ExportReport:
    """Write ``model`` as ``fmt`` to ``out`` with its sidecar, once it matches torch. An existing
    ``out`` or sidecar is refused before any work unless ``force`` (:mod:`hnas_edge.outputs`).

    The graph takes the LUT's batch (``batch``, default the LUT's; another is refused), what the
    LUT priced; a dynamic batch dimension costs onnxruntime 6–12% at batch 1 on the
    quickstart's models.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    batch = export_batch(model, batch)
    out = claim_output(out, force=force, flag="-o")
    claim_output(sidecar_path(out), force=force, flag="-o")
    inputs = sample_inputs(model, parity_samples(batch))
    if fmt == "plan":
        return _export_plan(model, out, inputs, precision, batch)
    if precision != "fp32":
        raise ConfigError(f"--precision {precision} applies to plans; ONNX and ORT are fp32")
    batches = [inputs] if dynamic_batch else in_batches(inputs, batch)
    with tempfile.TemporaryDirectory(prefix="hnas-export-") as tmp:
        onnx_path = export_onnx(
            model.net, batches[0], Path(tmp) / "model.onnx", OPSET, dynamic_batch
        )
        candidate = onnx_path if fmt == "onnx" else _write_ort(onnx_path, Path(tmp) / "model.ort")
        diff = max(onnx_parity(model.net, batch, candidate).max_abs_diff for batch in batches)
        if diff > PARITY_TOLERANCE:
            raise HnasError(
                f"the {fmt} export differs from torch by {diff:.2e} (> {PARITY_TOLERANCE}); "
                "nothing written"
            )
        atomic_write_bytes(out, candidate.read_bytes())
    samples = sum(len(next(iter(b.values()))) for b in batches)
    report = {"against": "torch", "max_abs_diff": diff, "samples": samples}
    path = atomic_write_json(sidecar_path(out), sidecar(model, fmt, report, batch, dynamic_batch))
    return ExportReport(out, path, fmt, diff, "torch")


def parity_samples(batch: int) -> int:
    """Samples the parity check reads: at least :data:`PARITY_SAMPLES`, in whole batches."""
    return -(-PARITY_SAMPLES // batch) * batch


def in_batches(inputs: dict[str, torch.Tensor], batch: int) -> list[dict[str, torch.Tensor]]:
    """``inputs`` cut into batches of exactly ``batch`` rows, what a fixed-batch graph takes;
    a short last batch is filled up with the first rows again."""
    n = len(next(iter(inputs.values())))
    if n == 0:
        raise HnasError("no samples to check the export on; the test split is empty")
    rows = torch.arange(-(-n // batch) * batch) % n
    return [
        {m: x[rows[start : start + batch]] for m, x in inputs.items()}
        for start in range(0, len(rows), batch)
    ]


def _numpy(batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {m: x.numpy() for m, x in batch.items()}


def _write_ort(onnx_path: Path, target: Path) -> Path:
    """onnxruntime's offline optimisation for CPU, saved in its ORT format (the name decides).

    All levels, layout transforms included: an ORT-format model is not re-optimised when
    loaded, and without them it ran 4.7× slower than the plain ONNX here (0.30 vs 0.064 ms).
    The layouts chosen suit the CPU it is made on; export on (or for) the target's kind of CPU.
    """
    ort_session(onnx_path, optimized_path=target)
    return target


def _export_plan(
    model: SearchedModel, out: Path, inputs: dict[str, torch.Tensor], precision: str, batch: int
) -> ExportReport:
    """A TensorRT engine built here (on the target device) from an ONNX export at ``batch``
    (TensorRT fixes the batch in the engine's input shapes), then compared with onnxruntime on
    the same samples batch by batch."""
    from hnas_edge.export.tensorrt import build_plan, run_plan

    batches = in_batches(inputs, batch)
    arrays = [_numpy(one) for one in batches]
    calibration = []
    if precision == "int8":
        train = sample_inputs(model, max(CALIBRATION_SAMPLES, batch), split="train")
        calibration = [_numpy(one) for one in in_batches(train, batch)]
    with tempfile.TemporaryDirectory(prefix="hnas-plan-") as tmp:
        onnx_path = export_onnx(model.net, batches[0], Path(tmp) / "model.onnx")
        plan = build_plan(onnx_path, precision, calibration, out.with_suffix(".cache"), batch)
        outputs = run_plan(plan, arrays)
        diff = max(
            float(np.max(np.abs(got[0] - run_onnx(onnx_path, one)[0])))
            for got, one in zip(outputs, arrays, strict=True)
        )
        atomic_write_bytes(out, plan)
    report = {"against": "onnxruntime", "max_abs_diff": diff, "precision": precision}
    path = atomic_write_json(sidecar_path(out), sidecar(model, "plan", report, batch))
    return ExportReport(out, path, "plan", diff, "onnxruntime")
