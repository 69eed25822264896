#!/usr/bin/env bash
# Every GPU-only measurement in one device call (issues 6, 10): the padded vs packed train step at mean lengths
# 160 and 512 (benchmarks/train_step.py), then DeepSpeed / DDP / DDP-packed through Ray (benchmarks/gpu_check.sh).
# Logs and JSON lines go to $OUT (the device tool's output folder), else runs/gpu. Budget: < 9 minutes.
#   benchmarks/gpu_session.sh            # on an H100/H200 machine
#   benchmarks/gpu_session.sh --small    # CPU rehearsal of the same script, tiny model, seconds
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/runs/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
small=()
[[ " $* " == *" --small "* ]] && small=(--small)
status=0
{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} | tee "$OUT/machine.txt"
timeout 300 "$PY" benchmarks/train_step.py "${small[@]}" --out "$OUT/train_step.jsonl" 2>&1 | tee "$OUT/train_step.log" \
  || status=1
benchmarks/gpu_check.sh "${small[@]}" 2>&1 | tee "$OUT/gpu_check.log" || status=1
exit $status
