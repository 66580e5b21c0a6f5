#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run: the GPU-marked tests, training and a tiny search
# on CUDA (--accelerator cuda) whose front model is exported and deployed with parity (peak GPU
# memory per stage-2 candidate printed), stage 2 of one candidate timed on CPU and CUDA at both
# budgets (scripts/bench_stage2.py), a full `gpu` profile of a space (torch on CUDA with CUDA
# graphs, NVML energy) and its end-to-end validation.
# Usage: scripts/gpu_check.sh OUT_DIR [SPACE] [VALIDATE_SAMPLES]
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [SPACE] [VALIDATE_SAMPLES]}
space=${2:-avmnist}
samples=${3:-20}
mkdir -p "$out"
hnas() { python3 -c "from hnas_edge.cli import main; main()" "$@"; }
export PYTHONUNBUFFERED=1 COLUMNS=120

nvidia-smi --query-gpu=name,driver_version,power.draw,power.limit,clocks.sm,temperature.gpu \
    --format=csv | tee "$out/gpu.csv"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    | tee -a "$out/gpu.csv"

echo "== GPU tests"
SECONDS=0
python3 -m pytest -q -rs -m gpu tests 2>&1 | tee "$out/pytest-gpu.log"
echo "gpu tests: ${SECONDS}s"

echo "== train and search on CUDA (1 epoch, tiny search), export, deploy with parity"
SECONDS=0
{
    hnas train --dataset avdigits --epochs 1 --limit 256 --accelerator cuda --out "$out/cuda-sn" \
        | tail -n 8
    hnas profile --device cpu --space avmnist --out "$out/cuda-cpu-lut.json" | tail -n 2
    hnas search --lut "$out/cuda-cpu-lut.json" --supernets "$out/cuda-sn" --accelerator cuda \
        --population 6 --generations 2 --quartile 0.5 --darts-epochs 1 --finetune-epochs 1 \
        --workers 2 --out "$out/cuda-search" | tail -n 12
    python3 - "$out/cuda-search" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
front = json.loads((out / "front.json").read_text())
print("search device:", front["accelerator"])
for cid, record in json.loads((out / "state.json").read_text())["records"].items():
    if record["fusion"]:
        gpu = record["fusion"].get("gpu", {})
        print(f"candidate {cid}: peak GPU memory {gpu.get('peak_memory_mb')} MiB on {gpu.get('name')}")
print("MODEL", front["models"][0]["id"], front["models"][0]["test_metric"])
PY
} 2>&1 | tee "$out/cuda-search.log"
model=$(sed -n 's/^MODEL \([0-9a-f]*\) .*/\1/p' "$out/cuda-search.log")
hnas export "$out/cuda-search/$model" --format onnx -o "$out/cuda-model.onnx" 2>&1 \
    | tee -a "$out/cuda-search.log"
hnas deploy "$out/cuda-model.onnx" --device cpu --split test 2>&1 | tail -n 6 \
    | tee -a "$out/cuda-search.log"
echo "cuda train+search+export+deploy: ${SECONDS}s" | tee -a "$out/cuda-search.log"

echo "== stage 2 of one candidate: CPU vs CUDA (fp32, bf16) at the small budget, CUDA at the paper's"
SECONDS=0
{
    python3 scripts/bench_stage2.py --lut "$out/cuda-cpu-lut.json" --supernets "$out/cuda-sn" \
        --budgets small --accelerators cpu cuda:off cuda --repeats 2 --out "$out/bench-small.json"
    python3 scripts/bench_stage2.py --lut "$out/cuda-cpu-lut.json" --supernets "$out/cuda-sn" \
        --budgets paper --accelerators cuda --repeats 2 --out "$out/bench-paper.json"
} 2>&1 | tee "$out/bench-stage2.log"
echo "bench: ${SECONDS}s" | tee -a "$out/bench-stage2.log"

echo "== profile --device gpu --space $space"
SECONDS=0
hnas profile --device gpu --space "$space" --out "$out/gpu-$space.json" 2>&1 | tail -n 25 \
    | tee "$out/profile.log"
echo "profile: ${SECONDS}s" | tee -a "$out/profile.log"

echo "== lut validate ($samples networks)"
SECONDS=0
hnas lut validate "$out/gpu-$space.json" --device gpu --space "$space" --samples "$samples" 2>&1 \
    | tail -n 30 | tee "$out/validate.log"
echo "validate: ${SECONDS}s" | tee -a "$out/validate.log"
