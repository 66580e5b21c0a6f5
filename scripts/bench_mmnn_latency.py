"""Benchmark: the largest avmnist multimodal network at batch 1, onnxruntime vs torch eager.

"Largest": both backbones at their max config, 4 cells × 4 nodes of CatConvMish (the costliest
operator), every node and cell live, all six candidate features read. One thread for both
runtimes; median of --runs timed calls after --warmup calls. Prints one JSON line.

    python scripts/bench_mmnn_latency.py --runs 300
    python scripts/bench_mmnn_latency.py --model result/MODEL_ID   # a searched front model
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hnas_edge.backend.onnx import export_onnx
from hnas_edge.backend.onnxruntime import ort_session
from hnas_edge.space.fusion import CellGene, Genotype, NodeGene
from hnas_edge.space.mmnn import MultimodalArch, build_fresh
from hnas_edge.space.presets import get_preset


def largest_arch() -> MultimodalArch:
    preset = get_preset("avmnist")
    n_inputs = 6
    chain = tuple(NodeGene((0, 1) if d == 0 else (d + 1, d % 2), "CatConvMish") for d in range(4))
    cells = [CellGene((2, 5), chain)]  # both embeddings: the whole of both backbones
    for p, candidate in enumerate((0, 1, 3), start=1):
        cells.append(CellGene((n_inputs + p - 1, candidate), chain))
    configs = {m: preset.backbone(m).max_config() for m in preset.modalities}
    return MultimodalArch("avmnist", configs, 4, 4, Genotype(n_inputs, tuple(cells)))


def median_ms(call, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--model", type=Path, help="RESULT_DIR/MODEL_ID of a search (default: largest)"
    )
    args = parser.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.model:
        from hnas_edge.export.searched import load_searched

        net = load_searched(args.model).net
    else:
        net = build_fresh(get_preset("avmnist"), largest_arch()).eval()
    inputs = net.example_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(export_onnx(net, inputs, Path(tmp) / "largest.onnx"), threads=1)
    feed = {k: v.numpy() for k, v in inputs.items()}
    with torch.no_grad():
        torch_ms = median_ms(lambda: net(*inputs.values()), args.runs, args.warmup)
        expected = net(*inputs.values()).numpy()
    ort_ms = median_ms(lambda: session.run(None, feed), args.runs, args.warmup)
    diff = float(np.abs(session.run(None, feed)[0] - expected).max())
    print(
        json.dumps(
            {
                "parts": len(net.parts()),
                "params": sum(p.numel() for p in net.parameters()),
                "onnxruntime_median_ms": round(ort_ms, 4),
                "torch_eager_median_ms": round(torch_ms, 4),
                "runs": args.runs,
                "warmup": args.warmup,
                "threads": 1,
                "max_abs_diff": diff,
                "torch": torch.__version__,
                "onnxruntime": ort.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
