#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run: the GPU-marked tests, a full `gpu` profile of a
# space (torch on CUDA with CUDA graphs, NVML energy) and its end-to-end validation.
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
