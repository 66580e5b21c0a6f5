#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in stages (each writes its log under OUT_DIR):
#   search   train 1 epoch and run a tiny search on CUDA (--accelerator cuda), export the front's
#            first model and deploy it with parity; peak GPU memory per stage-2 candidate
#   train    a supernet training epoch timed on the CPU and on CUDA (full avdigits, 2 epochs)
#   bench    stage 2 of one candidate timed on CPU and CUDA (fp32, bf16) at the small budget and
#            on CUDA at the paper's, with DARTS's floor (scripts/bench_stage2.py)
#   tests    the GPU-marked tests
#   profile  a full `gpu` profile of GPU_CHECK_SPACE (avmnist; torch on CUDA with CUDA graphs,
#            NVML energy) and its end-to-end validation on GPU_CHECK_SAMPLES (20) networks
# Usage: scripts/gpu_check.sh OUT_DIR [STAGE ...]   (no stage: all, in the order above)
# Device time is short: the first three time training and search on the GPU in a few minutes;
# run the others in a second call if time is left. A stage run again in the same OUT_DIR
# continues what it finished (training kept, the search resumed). Every stage reads the LUT
# shipped with the golden tests (a real cpu LUT of avmnist) instead of profiling one; bench
# trains its supernets if search did not.
set -uo pipefail
usage="usage: scripts/gpu_check.sh OUT_DIR [search|train|bench|tests|profile ...]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
out=$1
shift
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(search train bench tests profile)
for stage in "${stages[@]}"; do
    case $stage in
        search | train | bench | tests | profile) ;;
        *) echo "unknown stage '$stage'; $usage" >&2; exit 2 ;;
    esac
done
space=${GPU_CHECK_SPACE:-avmnist}
samples=${GPU_CHECK_SAMPLES:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
lut="$repo/tests/golden/data/cpu-measured.json"
supernets="$out/cuda-sn"
mkdir -p "$out"
hnas() { python3 -c "from hnas_edge.cli import main; main()" "$@"; }
export PYTHONUNBUFFERED=1 COLUMNS=120

supernets_on_cuda() {
    [ -f "$supernets/train.json" ] && return
    hnas train --dataset avdigits --epochs 1 --limit 256 --accelerator cuda --out "$supernets" \
        | tail -n 8
}

stage_search() {
    echo "== train and search on CUDA (1 epoch, tiny search), export, deploy with parity"
    SECONDS=0
    {
        supernets_on_cuda
        hnas search --lut "$lut" --supernets "$supernets" --accelerator cuda \
            --population 6 --generations 2 --quartile 0.5 --darts-epochs 1 --finetune-epochs 1 \
            --workers 2 --resume --out "$out/cuda-search" | tail -n 12
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
    local model
    model=$(sed -n 's/^MODEL \([0-9a-f]*\) .*/\1/p' "$out/cuda-search.log")
    hnas export "$out/cuda-search/$model" --format onnx -o "$out/cuda-model.onnx" --force 2>&1 \
        | tee -a "$out/cuda-search.log"
    hnas deploy "$out/cuda-model.onnx" --device cpu --split test 2>&1 | tail -n 6 \
        | tee -a "$out/cuda-search.log"
    echo "cuda train+search+export+deploy: ${SECONDS}s" | tee -a "$out/cuda-search.log"
}

stage_train() {
    echo "== supernet training, seconds per epoch: CPU vs CUDA (full avdigits, 2 epochs each)"
    SECONDS=0
    {
        for accelerator in cpu cuda; do
            [ -f "$out/train-$accelerator/train.json" ] && continue
            hnas train --dataset avdigits --epochs 2 --accelerator "$accelerator" \
                --out "$out/train-$accelerator" | tail -n 5
        done
        python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
last = {}
for accelerator in ("cpu", "cuda"):
    path = out / f"train-{accelerator}" / "train.json"
    if not path.exists():
        continue
    record = json.loads(path.read_text())
    for modality, summary in record["modalities"].items():
        seconds = [entry["seconds"] for entry in summary["history"]]
        last[accelerator, modality] = seconds[-1]
        print(f"{accelerator:>4} {modality}: seconds per epoch "
              + " ".join(f"{s:.1f}" for s in seconds)
              + f" (torch threads {record['threads_this_run']})")
for (accelerator, modality), seconds in last.items():
    if accelerator == "cuda" and ("cpu", modality) in last:
        print(f"{modality}: cpu / cuda, last epoch: {last['cpu', modality] / seconds:.1f}x")
PY
    } 2>&1 | tee "$out/train-epoch.log"
    echo "train per epoch: ${SECONDS}s" | tee -a "$out/train-epoch.log"
}

stage_bench() {
    echo "== stage 2 of one candidate: CPU vs CUDA (fp32, bf16), small budget; CUDA, the paper's"
    SECONDS=0
    {
        supernets_on_cuda
        python3 "$repo/scripts/bench_stage2.py" --lut "$lut" --supernets "$supernets" \
            --budgets small \
            --accelerators cpu cuda:off cuda --repeats 2 --out "$out/bench-small.json"
        python3 "$repo/scripts/bench_stage2.py" --lut "$lut" --supernets "$supernets" \
            --budgets paper \
            --accelerators cuda --repeats 2 --out "$out/bench-paper.json"
    } 2>&1 | tee "$out/bench-stage2.log"
    echo "bench: ${SECONDS}s" | tee -a "$out/bench-stage2.log"
}

stage_tests() {
    echo "== GPU tests"
    SECONDS=0
    python3 -m pytest -q -rs -m gpu "$repo/tests" 2>&1 | tee "$out/pytest-gpu.log"
    echo "gpu tests: ${SECONDS}s" | tee -a "$out/pytest-gpu.log"
}

stage_profile() {
    echo "== profile --device gpu --space $space"
    SECONDS=0
    hnas profile --device gpu --space "$space" --resume --out "$out/gpu-$space.json" 2>&1 \
        | tail -n 25 \
        | tee "$out/profile.log"
    echo "profile: ${SECONDS}s" | tee -a "$out/profile.log"
    echo "== lut validate ($samples networks)"
    SECONDS=0
    hnas lut validate "$out/gpu-$space.json" --device gpu --space "$space" --samples "$samples" \
        2>&1 | tail -n 30 | tee "$out/validate.log"
    echo "validate: ${SECONDS}s" | tee -a "$out/validate.log"
}

nvidia-smi --query-gpu=name,driver_version,power.draw,power.limit,clocks.sm,temperature.gpu \
    --format=csv | tee "$out/gpu.csv"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    | tee -a "$out/gpu.csv"
for stage in "${stages[@]}"; do
    "stage_$stage"
done
