#!/usr/bin/env bash
# GPU benchmark for issue 6 (prepared; needs a CUDA device). Training throughput at a large batch with
# AMP (bf16) + channels-last + torch.compile, ours vs timm; inference throughput fp32/bf16 (fused, compiled).
#   benchmarks/gpu.sh                 # writes benchmarks/results/gpu/gpu_bench.json and prints a table
#   benchmarks/gpu.sh --no-compile    # quicker; any gpu_bench.py flag is passed through
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} timeout 540 "$PY" benchmarks/gpu_bench.py "$@"
