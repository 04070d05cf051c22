#!/usr/bin/env bash
# Regenerate the CPU benchmark (inference + export + bf16/int8 + training step) in one go. Since issue 11
# it also runs timm's model through every runtime (torch.compile, onnxruntime fp32/int8, OpenVINO f32/bf16/int8)
# and ours through OpenVINO, and prints "best ours / best peer" at batch 32 and 1. Issue-11 run:
#   OUT=benchmarks/results/cpu_issue11 flock /tmp/rexnet-bench.lock benchmarks/run_bench.sh \
#       --no-train --no-torchvision --calib-images 128
#
#   benchmarks/run_bench.sh                 # full run (about 8-10 min on 2 busy cores, less with a warm
#                                           # inductor cache in /tmp/torchinductor_$USER)
#   CHECKPOINT=runs/x/checkpoints/best.pt benchmarks/run_bench.sh
#                                           # also int8/bf16 accuracy on the embedded digits data
#   benchmarks/run_bench.sh --tiny          # smoke run; any 'rexnet bench' flag is passed through
#
# The int8 PT2E + inductor path needs torchao (pip install torchao; skipped with a warning otherwise).
# Writes benchmarks/results/cpu/{bench.json,bench.md,latency_vs_macs.png} (OUT=... to change); an earlier
# run's files there are kept unless --overwrite is passed (refused before any timing).
# Without CHECKPOINT it uses benchmarks/results/digits_ckpt/best.pt when present; make one with
#   .venv/bin/rexnet train -m rexnet_100 --data digits --image-size 64 -e 5 -o benchmarks/results/digits_run
#   && cp benchmarks/results/digits_run/checkpoints/best.pt benchmarks/results/digits_ckpt/
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/results/cpu}
CHECKPOINT=${CHECKPOINT:-benchmarks/results/digits_ckpt/best.pt}
# busy-waiting OpenMP workers wreck timings on a shared machine (see rexnet.deploy.bench.passive_omp_env)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ARGS=()
if [[ -f "$CHECKPOINT" ]]; then
  ARGS+=(--checkpoint "$CHECKPOINT" --calib-data digits)
else
  echo "note: no checkpoint at $CHECKPOINT: random weights, agreement on random inputs only" >&2
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; uptime: $(uptime)"
start=$(date +%s)
"$PY" -m rexnet bench --out "$OUT" "${ARGS[@]}" "$@"
echo "done in $(( $(date +%s) - start )) s; uptime: $(uptime)"
