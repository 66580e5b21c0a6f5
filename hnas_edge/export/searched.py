"""A model of a search's front, rebuilt from its checkpoint with what the search said of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hnas_edge.checks import Fields
from hnas_edge.errors import HnasError
from hnas_edge.io import parse_json, read_json
from hnas_edge.space.mmnn import MultimodalArch, MultimodalNet, build_fresh
from hnas_edge.space.presets import get_preset
from hnas_edge.train import checkpoint


@dataclass(frozen=True)
class SearchedModel:
    id: str
    arch: MultimodalArch
    net: MultimodalNet
    record: dict[str, Any]  # its entry in front.json: metrics, predicted cost
    result: dict[str, Any]  # front.json: dataset, LUT and device, mode, settings


def resolve(path: Path) -> tuple[Path, str]:
    """``RESULT_DIR/MODEL_ID`` or ``RESULT_DIR/models/MODEL_ID`` → (result dir, model id)."""
    if path.parent.name == "models" and (path.parent.parent / "front.json").exists():
        return path.parent.parent, path.name
    if (path.parent / "front.json").exists():
        return path.parent, path.name
    raise HnasError(
        f"{path}: no front.json beside it; give RESULT_DIR/MODEL_ID of a finished `hnas search`"
    )


FRONT_FIX = "a file of `hnas search`; rerun the search or restore it"
METRICS = ("accuracy", "weighted_f1")


def check_front(result: Any, f: Fields) -> dict[str, dict[str, Any]]:
    """front.json's fields that export reads (its Pareto models by id); one line otherwise."""
    f.obj(result, "top level")
    f.text(f.get(result, "dataset", "dataset", "the dataset searched"), "dataset")
    f.optional_text(result.get("data_dir"), "data_dir")
    f.choice(f.get(result, "metric", "metric", "the task's metric"), "metric", METRICS)
    lut = f.obj(f.get(result, "lut", "lut", "the LUT searched against"), "lut")
    f.optional_text(lut.get("device"), "lut.device")
    if lut.get("batch") is not None:
        f.integer(lut["batch"], "lut.batch", ge=1)
    f.optional_text(result.get("mode"), "mode")
    if result.get("samples_limit") is not None:
        f.integer(result["samples_limit"], "samples_limit", ge=1)
    models = f.array(f.get(result, "models", "models", "the front's models"), "models")
    records = {}
    for i, model in enumerate(models):
        where = f"models[{i}]"
        f.obj(model, where)
        f.name(model.get("id"), f"{where}.id")
        checkpoint_path = f.text(model.get("checkpoint"), f"{where}.checkpoint")
        if Path(checkpoint_path).is_absolute() or ".." in Path(checkpoint_path).parts:
            raise f.fail(f"{where}.checkpoint", checkpoint_path, "a path inside the result folder")
        f.number(model.get("latency_ms"), f"{where}.latency_ms", gt=0)
        f.optional_number(model.get("energy_mj"), f"{where}.energy_mj", ge=0)
        for metric in ("val_metric", "test_metric"):
            f.optional_number(model.get(metric), f"{where}.{metric}", ge=0, le=1)
        records[model["id"]] = model
    return records


def load_searched(path: Path) -> SearchedModel:
    result_dir, model_id = resolve(Path(path))
    front = result_dir / "front.json"
    result = read_json(front, what="search result")
    records = check_front(result, Fields(f"search result {front}", FRONT_FIX))
    if model_id not in records:
        known = ", ".join(records) or "none"
        raise HnasError(f"{model_id} is not on the front of {result_dir} (front: {known})")
    record = records[model_id]
    checkpoint_path = result_dir / record["checkpoint"]
    saved = checkpoint.load(checkpoint_path)
    f = Fields(f"checkpoint {checkpoint_path}", "rerun the search or restore it")
    f.obj(saved, "top level")
    text = f.text(f.get(saved, "architecture", "architecture", "the model's JSON"), "architecture")
    arch = MultimodalArch.from_dict(parse_json(text, f"checkpoint {checkpoint_path} architecture"))
    state = f.get(saved, "state_dict", "state_dict", "the model's weights")
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise f.fail("state_dict", state, "an object of tensors")
    net = build_fresh(get_preset(arch.preset), arch)
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise HnasError(
            f"{checkpoint_path} does not match its architecture; rerun the search"
        ) from None
    return SearchedModel(model_id, arch, net.eval(), record, result)
