"""Do the modalities complement each other? Max subnets alone vs fused, on validation (the
task's metric: accuracy or weighted F1).

Extracts the max subnet of each trained supernet (batch norm recalibrated), fuses their
embeddings with one ConcatFC node, trains adapters + fusion + head briefly on frozen backbones.

    python scripts/fused_baseline.py --supernets /tmp/sn --epochs 5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from hnas_edge.data import load_dataset, metric_of
from hnas_edge.search.evaluate import late_fusion
from hnas_edge.space.mmnn import MultimodalArch, MultimodalNet
from hnas_edge.train.batches import modality_tensors
from hnas_edge.train.evaluation import recalibrate_bn, task_metric
from hnas_edge.train.fused import fused_metric, train_fusion
from hnas_edge.train.loop import load_supernets, trained_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernets", type=Path, required=True)
    parser.add_argument("--dataset", default="avdigits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--config", choices=("max", "min"), default="max")
    args = parser.parse_args()
    torch.manual_seed(0)
    preset, supernets = trained_preset(args.supernets), load_supernets(args.supernets)
    train, val = (load_dataset(args.dataset, split=s) for s in ("train", "val"))
    result: dict[str, Any] = {"metric": metric_of(train.task)}
    backbones = {}
    for m, net in supernets.items():
        config = getattr(net, f"{args.config}_config")()
        net.set_active(config)
        x, y = modality_tensors(train, m)
        recalibrate_bn(net, x, 64, 8)
        backbones[m] = net.extract(config).eval()
        result[f"{m}_alone"] = task_metric(backbones[m], *modality_tensors(val, m), train.task)
    genotype = late_fusion(preset)
    configs = {m: b.config for m, b in backbones.items()}
    arch = MultimodalArch(preset.name, configs, 1, 1, genotype)
    net = MultimodalNet(preset, arch, backbones)
    inputs = {m: modality_tensors(train, m)[0] for m in preset.modalities}
    losses = train_fusion(net, (inputs, train.targets), args.epochs, train.task)
    val_inputs = {m: modality_tensors(val, m)[0] for m in preset.modalities}
    result["fused"] = fused_metric(net, (val_inputs, val.targets), train.task)
    result["fusion_losses"] = losses
    print(json.dumps(result))


if __name__ == "__main__":
    main()
