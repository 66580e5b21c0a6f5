"""What evaluating candidates needs in one process: the trained supernets, the dataset splits as
tensors, the LUT, the device. A :class:`SearchContext` is built once per process (the driver, and
each worker process of an executor: see :mod:`hnas_edge.search.executor`) from a picklable
:class:`SearchInputs`, which is all that crosses to a worker.

Every context computes on one device, its forward passes in one precision (both from
``SearchInputs.compute``, resolved in its own process): the supernets and the split tensors live
there. Ray workers on other machines get the supernets
and the LUT as bytes (:func:`pack_inputs`, :func:`unpack_inputs`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hnas_edge.accelerator import Compute
from hnas_edge.data import load_dataset, metric_of
from hnas_edge.profiling.coverage import default_accounting
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.config import SearchConfig
from hnas_edge.search.darts import OperatorCosts
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.train.batches import ModalityData, modality_tensors
from hnas_edge.train.loop import load_supernets, supernet_files, trained_preset
from hnas_edge.train.scorer import SubnetScorer

SPLITS = ("train", "val", "test")
STAGE2_SPLITS = ("train", "val")  # what stage 2 reads; test is touched once, at the end


@dataclass(frozen=True)
class SearchInputs:
    """Where a search reads from: enough for any process to build its :class:`SearchContext`."""

    supernets: Path
    dataset: str
    data_dir: str | None
    lut: Path
    config: SearchConfig
    out: Path
    compute: Compute = Compute()  # resolved by each process that evaluates


class SearchContext:
    """One process's supernets (on its device), LUT, dataset splits and labels; the split
    tensors of a modality and its stage-1 scorer are made on first use and kept."""

    def __init__(self, inputs: SearchInputs) -> None:
        self.inputs = inputs
        self.config = inputs.config
        self.mode = inputs.config.run_mode
        self.device, self.precision = inputs.compute.setup()
        self.preset = trained_preset(inputs.supernets)
        self.supernets = load_supernets(inputs.supernets, self.device)
        self.lut = Lut.load(inputs.lut)
        self.accounting = inputs.config.accounting or default_accounting(self.lut)
        self.op_costs = OperatorCosts.from_lut(self.lut, self.preset.fusion_C, self.preset.fusion_L)
        self._splits = {s: load_dataset(inputs.dataset, inputs.data_dir, split=s) for s in SPLITS}
        # the supernets' space, not the dataset's: refuses supernets of another space as well
        check_dataset_shapes(self.preset, self._splits["train"])
        self.task = self._splits["train"].task
        self.metric = metric_of(self.task)  # what every score is
        self.labels = {
            s: d.targets[: self.config.limit].to(self.device) for s, d in self._splits.items()
        }
        self._tensors: dict[tuple[str, str], torch.Tensor] = {}
        self._scorers: dict[str, SubnetScorer] = {}

    def tensors(self, modality: str, split: str) -> torch.Tensor:
        """One modality's inputs of ``split`` on this context's device (gathered once)."""
        key = (modality, split)
        if key not in self._tensors:
            x = modality_tensors(self._splits[split], modality, self.config.limit)[0]
            self._tensors[key] = x.to(self.device)
        return self._tensors[key]

    def scorer(self, modality: str) -> SubnetScorer:
        """Stage 1's scorer of ``modality``'s subnets (on train and val)."""
        if modality not in self._scorers:
            data = ModalityData(
                (self.tensors(modality, "train"), self.labels["train"]),
                (self.tensors(modality, "val"), self.labels["val"]),
                self.task,
            )
            self._scorers[modality] = SubnetScorer(
                self.supernets[modality],
                data,
                bn_batches=self.config.bn_batches,
                precision=self.precision,
            )
        return self._scorers[modality]

    def fixed_config(self, modality: str) -> dict[str, Any]:
        """The hand-picked backbone of the ablation: the supernet's largest subnet."""
        return self.preset.backbone(modality).max_config()


def pack_inputs(inputs: SearchInputs) -> dict[str, bytes]:
    """The files a context reads (supernets, LUT), for workers on machines without them.
    An on-disk dataset (``data_dir``) is not packed: it must be at the same path there."""
    root = inputs.supernets
    files = {f"supernets/{p.relative_to(root)}": p for p in supernet_files(root)}
    files["lut.json"] = inputs.lut
    return {name: path.read_bytes() for name, path in files.items()}


def unpack_inputs(inputs: SearchInputs, files: Mapping[str, bytes]) -> SearchInputs:
    """``inputs`` reading the packed files, unpacked into a private folder of this process
    (removed when it exits)."""
    folder = Path(tempfile.mkdtemp(prefix="hnas-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return replace(inputs, supernets=folder / "supernets", lut=folder / "lut.json")
