#!/usr/bin/env bash
# GPU check (issue 6): DeepSpeed ZeRO-2 bf16 and DDP NCCL on a Qwen2-0.5B-shaped random model through Ray's
# TorchTrainer on one GPU; prints tokens/s, estimated MFU and peak GPU memory. One call, < 8 minutes, offline.
#   benchmarks/gpu_check.sh            # on an H100/H200 machine
#   benchmarks/gpu_check.sh --small    # CPU smoke mode (tiny model, gloo, DeepSpeed fp32)
# Extra flags go to benchmarks/gpu/train_check.py (--steps, --batch-size, --max-length, --backends).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$PWD/.state/torch_extensions}"
if [[ " $* " != *" --small "* ]]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import deepspeed" 2>/dev/null || { echo "deepspeed is not installed (pip install -e '.[gpu]')"; exit 1; }
fi
exec timeout 470 "$PY" benchmarks/gpu/train_check.py "$@"
