#!/usr/bin/env bash
# GPU benchmark on one H100/H200 (under 5 minutes): ViT-B/16 at 224 px, bf16, fused attention; then the
# scale-out figures (runs per hour, benchmarks/scale_out_gpu.py, under 7 minutes).
# Usage: bash benchmarks/gpu.sh [--compile] [--results-dir DIR] [--peak-tflops T]   (see gpu.py --help)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then python=.venv/bin/python; fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null \
  || echo "nvidia-smi not found"
timeout 300 "$python" benchmarks/gpu.py "$@"
# Runs per hour of a LoRA sweep for 1 process and N workers per GPU (skip with HFM_SKIP_SCALE_OUT=1).
if [ -z "${HFM_SKIP_SCALE_OUT:-}" ]; then
  exec timeout 420 "$python" benchmarks/scale_out_gpu.py
fi
