"""A model of a search's front, rebuilt from its checkpoint with what the search said of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnas_edge.errors import HnasError
from hnas_edge.io import read_json
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


def load_searched(path: Path) -> SearchedModel:
    result_dir, model_id = resolve(Path(path))
    result = read_json(result_dir / "front.json", what="search result")
    records = {m["id"]: m for m in result.get("models", [])}
    if model_id not in records:
        known = ", ".join(records) or "none"
        raise HnasError(f"{model_id} is not on the front of {result_dir} (front: {known})")
    record = records[model_id]
    saved = checkpoint.load(result_dir / record["checkpoint"])
    arch = MultimodalArch.from_dict(json.loads(saved["architecture"]))
    net = build_fresh(get_preset(arch.preset), arch)
    try:
        net.load_state_dict(saved["state_dict"])
    except RuntimeError:
        raise HnasError(
            f"{result_dir / record['checkpoint']} does not match its architecture; rerun the search"
        ) from None
    return SearchedModel(model_id, arch, net.eval(), record, result)
