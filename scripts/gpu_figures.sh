#!/usr/bin/env bash
# The GPU rows of docs/performance.md, in one run:
#
#   bash scripts/gpu_figures.sh [results-folder]      # default: gpu_figures/
#
# 1. The paper recipe's training step: TBSN, batch 4 x 128x128, bf16 autocast, compile=true,
#    beside the same step in fp32 eager (iterations per second = 1 / median step; the recipe's
#    100k steps fit in one hour at 28 it/s or more).
# 2. One 256x256 SIDD block through the TBSN protocol (PD 2 + R3 T=8), fp32 beside bf16.
# 3. A 12-megapixel photo through the code predict.py runs: the paper TBSN (fp32 and bf16) and
#    tbsn_small through the full protocol, the photos student in one pass.
#
# Each command's output is kept in the results folder (and the benchmarks' JSON beside it).
# DEVICE=cpu runs the same commands on the CPU; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_figures}"
device="${DEVICE:-cuda}"
python="${PYTHON:-python}"
mkdir -p "$out"

run() {
    local name=$1
    shift
    echo "== $name: $*"
    "$python" "$@" 2>&1 | tee "$out/$name.txt"
}

"$python" -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" \
    | tee "$out/machine.txt"
run train scripts/benchmark.py --compare "tbsn precision=bf16 compile=true" "tbsn" --device "$device" \
    --batch 4 --measure train --warmup 3 --repeats 20 --json "$out/train.json"
run block scripts/benchmark.py --compare "tbsn" "tbsn precision=bf16" --device "$device" \
    --measure block --warmup 1 --repeats 5 --json "$out/block.json"
run photo_tbsn scripts/benchmark_inference.py photo --net tbsn --device "$device"
run photo_tbsn_bf16 scripts/benchmark_inference.py photo --net tbsn --device "$device" --precision bf16
run photo_tbsn_small scripts/benchmark_inference.py photo --net tbsn_small --device "$device"
run photo_student scripts/benchmark_inference.py photo --net photos_student --device "$device"
