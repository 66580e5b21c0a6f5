"""`hnas train`: one supernet per modality (the text backbone trained plainly), checkpointed every
epoch, resumable, early-stopped on the validation split.

Output folder::

    OUT/train.json               settings, versions, the task's metric (``metric``: accuracy or
                                 weighted_f1), per-modality history (each epoch's loss, validation
                                 metric and seconds) and final validation metrics,
                                 the device each modality trained on (``accelerator``)
    OUT/<modality>/supernet.pt   the weights of the best epoch (weights_only-safe)
    OUT/<modality>/checkpoint.pt everything needed to resume (weights, optimiser, RNG states)

Every step, batch-norm recalibration and validation runs on the device passed down (``device``,
resolved from ``--accelerator``), forward passes in the precision passed down (``--amp``);
networks are built and batches drawn on the CPU, so the CPU
path is bit-identical whatever the accelerator code, and files hold CPU tensors.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hnas_edge.accelerator import FP32, Compute, Precision
from hnas_edge.data import load_dataset, metric_of
from hnas_edge.errors import HnasError
from hnas_edge.io import atomic_write_json, provenance, read_json
from hnas_edge.outputs import claim_output
from hnas_edge.space.modality import ModalitySpace
from hnas_edge.space.presets import SpacePreset, get_preset, preset_for_dataset
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.torch_state import check_threads, seeded, torch_threads
from hnas_edge.train import checkpoint
from hnas_edge.train.batches import ModalityData, batches
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.evaluation import subnet_metric
from hnas_edge.train.sandwich import plain_step, sandwich_step

Progress = Callable[[str, int, int, dict[str, float]], None]


def _metric(
    net: nn.Module, config: dict, data: ModalityData, cfg: TrainConfig, precision: Precision
) -> float:
    return subnet_metric(net, config, data, cfg.batch_size, cfg.bn_batches, precision)


def _epoch(
    net: nn.Module,
    data: ModalityData,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    rng: random.Random,
    epoch: int,
    precision: Precision,
) -> float:
    shuffle = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # on the CPU, always
    losses = []
    for x, y in batches(*data.train, cfg.batch_size, shuffle):
        if net.space.elastic:
            losses.append(
                sandwich_step(
                    net,
                    x,
                    y,
                    optimizer,
                    rng,
                    cfg.n_random,
                    data.task,
                    cfg.kd_temperature,
                    precision,
                )
            )
        else:
            losses.append(plain_step(net, x, y, optimizer, data.task, precision))
    return sum(losses) / max(len(losses), 1)


def train_modality(
    modality: str,
    space: ModalitySpace,
    data: ModalityData,
    cfg: TrainConfig,
    folder: Path,
    resume: bool,
    progress: Progress | None = None,
    device: torch.device | None = None,
    precision: Precision = FP32,
) -> dict[str, Any]:
    """Train one modality's network to completion (or early stop) on ``device`` (default: the
    CPU), forward passes in ``precision``; returns its summary.

    Every draw of torch's global stream (initial weights, dropout; the state a checkpoint saves
    and ``resume`` restores) happens inside :func:`~hnas_edge.torch_state.seeded` ``(cfg.seed)``:
    the caller's stream is left as it was."""
    device = device or torch.device("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    with seeded(cfg.seed):
        net = space.supernet().to(device)  # initialised on the CPU: the same on every device
        data = data.to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        rng = random.Random(cfg.seed)
        state: dict[str, Any] = {"epoch": 0, "best": -math.inf, "bad_epochs": 0, "history": []}
        ckpt_path = folder / "checkpoint.pt"
        if resume and ckpt_path.exists():
            saved = checkpoint.load(ckpt_path)
            net.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            checkpoint.set_python_rng_state(rng, saved["rng_python"])
            torch.set_rng_state(saved["rng_torch"])
            if device.type == "cuda" and "rng_cuda" in saved:
                torch.cuda.set_rng_state(saved["rng_cuda"], device)
            state = saved["state"]
        max_config = space.max_config()
        if progress:
            progress(modality, state["epoch"], cfg.epochs, {})
        while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
            epoch, start = state["epoch"], time.perf_counter()
            loss = _epoch(net, data, cfg, optimizer, rng, epoch, precision)
            scheduler.step()
            val = _metric(net, max_config, data, cfg, precision)  # a float: the device is done
            seconds = time.perf_counter() - start  # the epoch's training and its validation
            state["history"].append(
                {"epoch": epoch + 1, "loss": loss, "val_metric_max": val, "seconds": seconds}
            )
            if val > state["best"]:
                state["best"], state["bad_epochs"] = val, 0
                checkpoint.save(folder / "supernet.pt", {"model": net.state_dict()})
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            saved = {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_python": checkpoint.python_rng_state(rng),
                "rng_torch": torch.get_rng_state(),
                "state": state,
            }
            if device.type == "cuda":
                saved["rng_cuda"] = torch.cuda.get_rng_state(device)
            checkpoint.save(ckpt_path, saved)
            if progress:
                progress(modality, epoch + 1, cfg.epochs, {"loss": loss, "val_metric_max": val})
        net.load_state_dict(checkpoint.load(folder / "supernet.pt")["model"])
        summary: dict[str, Any] = {
            "epochs_run": state["epoch"],
            "stopped_early": state["epoch"] < cfg.epochs,
            "history": state["history"],
            "val_metric_max": _metric(net, max_config, data, cfg, precision),
        }
        if space.elastic:
            summary["val_metric_min"] = _metric(net, net.min_config(), data, cfg, precision)
            sampler = random.Random(cfg.seed + 1)
            summary["val_metric_random"] = [
                _metric(net, net.sample_config(sampler), data, cfg, precision)
                for _ in range(cfg.spread_samples)
            ]
        return summary


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for the rest of this process (None: leave torch's default):
    for a process entry point (the CLI), never a library function."""
    if threads is not None:
        torch.set_num_threads(check_threads(threads))


def trained_all(record: Mapping[str, Any], preset: SpacePreset) -> bool:
    """Whether a training record (train.json) holds every modality of ``preset``."""
    return all(m in record.get("modalities", {}) for m in preset.modalities)


def train(
    dataset: str,
    out: Path,
    cfg: TrainConfig,
    data_dir: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    threads: int | None = None,
    compute: Compute = Compute(),
) -> dict[str, Any]:
    """Train every modality of ``dataset``'s search space; write ``OUT/train.json``.

    ``threads`` is torch's intra-op thread count while it trains, restored after (None: the
    caller's); on a busy shared machine one thread is often faster than several competing ones.
    ``compute`` says where the networks train (``--accelerator``), whether CUDA must be
    reproducible (``--deterministic``) and the precision of forward passes (``--amp``; see
    :mod:`hnas_edge.accelerator`).
    """
    with torch_threads(threads):
        device, precision = compute.setup()  # before any work: `cuda` without a GPU is one line
        preset = preset_for_dataset(dataset)
        record_path = out / "train.json"
        claim_output(out, kind="folder", resume=resume)
        record = (
            read_json(record_path, what="training record")
            if resume and record_path.exists()
            else {}
        )
        metric = metric_of(preset.task)
        if record and (
            record.get("settings", {}).get("config") != cfg.to_dict()
            or record.get("metric") != metric
        ):
            raise HnasError(
                f"{out} was trained with other settings; "
                "resume with the same options or a new --out"
            )
        if record and trained_all(record, preset):
            return record  # finished: resumed again, it writes nothing (its hash is an input)
        record = record or {
            "dataset": dataset,
            "preset": preset.name,
            "metric": metric,
            "settings": {"config": cfg.to_dict(), "data_dir": data_dir},
            "modalities": {},
        }
        record["threads_this_run"] = torch.get_num_threads()
        record["accelerator_this_run"] = compute.describe(device, precision)
        started = time.monotonic()
        splits = (
            load_dataset(dataset, data_dir, split="train"),
            load_dataset(dataset, data_dir, "val"),
        )
        check_dataset_shapes(preset, splits[0])  # before training a network for other sizes
        for modality, space in preset.backbones:
            if modality in record["modalities"]:
                continue
            data = ModalityData.of(*splits, modality, cfg.limit)
            t0 = time.monotonic()
            summary = train_modality(
                modality, space, data, cfg, out / modality, resume, progress, device, precision
            )
            summary["wall_s"] = time.monotonic() - t0
            summary["accelerator"] = compute.describe(device, precision)
            record["modalities"][modality] = summary
            record["provenance"] = provenance(
                {**record["settings"], "accelerator": record["accelerator_this_run"]}
            )
            atomic_write_json(record_path, record)
        record["wall_s_this_run"] = time.monotonic() - started
        atomic_write_json(record_path, record)
        return record


def trained_preset(out: Path) -> SpacePreset:
    """The search space the supernets in ``out`` were trained for (recorded in train.json)."""
    record = read_json(out / "train.json", what="training record")
    try:
        return get_preset(record["preset"])
    except KeyError:
        raise HnasError(
            f"{out / 'train.json'} names no preset; retrain with `hnas train`"
        ) from None


def supernet_files(out: Path) -> list[Path]:
    """What :func:`load_supernets` reads (to ship to a machine without ``out``)."""
    return [out / "train.json"] + [
        out / modality / "supernet.pt" for modality in trained_preset(out).modalities
    ]


def load_supernets(out: Path, device: torch.device | None = None) -> dict[str, nn.Module]:
    """The trained network of every modality (in eval mode, on ``device``: default the CPU),
    rebuilt from the recorded preset."""
    preset = trained_preset(out)
    nets = {}
    for modality, space in preset.backbones:
        net = space.supernet()
        path = out / modality / "supernet.pt"
        try:
            net.load_state_dict(checkpoint.load(path)["model"])
        except (RuntimeError, KeyError):
            raise HnasError(f"{path} does not fit the {preset.name} space; retrain") from None
        nets[modality] = net.to(device or torch.device("cpu")).eval()
    return nets
