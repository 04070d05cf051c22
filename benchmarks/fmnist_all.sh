#!/usr/bin/env bash
# The whole Fashion-MNIST reproduction (issue 9), in the order the results depend on each other. Every step
# resumes where it stopped (finished runs are read back, the search's Optuna study is in its folder), so
# rerunning this script after an interruption continues; results land in benchmarks/results/fmnist/.
#
#   apt-get install dataset-fashion-mnist        # once
#   benchmarks/fmnist_all.sh                     # about 12 h on one core of a 2-core AMD EPYC (see RESULTS.md)
#   STEPS="compare table2" benchmarks/fmnist_all.sh
#
# Two processes can share the work: run the script with STEPS=search in one shell (or more: each search worker
# takes the next open slot) and STEPS="compare table2 lr best" in another.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RX=${RX:-.venv/bin/rexnet}
OUT=benchmarks/results/fmnist
STEPS=${STEPS:-compare table2 lr search controlled best figure}

for step in $STEPS; do
  case $step in
    compare)  # ReXNet vs MobileNetV2 at equal MACs: fashion-short, 8 epochs on 12,000 images, seeds 0-2
      $PY benchmarks/fmnist_compare.py ;;
    table2)  # Table 2's four steps on the two-IB proxy: fashion-short, 5 epochs on 8,000 images, seeds 0-2
      $PY benchmarks/fmnist_table2.py ;;
    lr)  # is MobileNetV2 held back by the LR? the same recipe at peak LR 0.05 instead of 0.1
      $PY benchmarks/fmnist_compare.py --lr 0.05 --models mobilenetv2_100 --out $OUT/lr005 \
          --runs runs/fmnist_compare_lr005 ;;
    search)  # Table 3 / Figure 2: 70 candidates x 3 seeds; 5 IBs at 7.5 M MACs and 16 px (= 30 M MACs at 32 px)
      $RX search run --out $OUT/search --data fashion-mnist --image-size 16 --budget-macs 7.5M --trials 70 \
          --seeds 3 --epochs 4 --max-samples 6000 --val-samples 5000 --seed 1 --threads 1 \
          --train-options '{"batch_size":128,"hflip":0.5,"aug_scale":[0.85,1.0],"aug_ratio":[0.9,1.11],"warmup_epochs":0.5}'
      $RX search report --out $OUT/search
      $PY benchmarks/fmnist_search_analysis.py $OUT/search ;;
    controlled)  # linear vs staircase vs the search's bottom/top mean shapes at the search's budget, seeds 10-12
      $PY benchmarks/fmnist_controlled.py $OUT/search ;;
    best)  # best-effort ReXNet: the fashion-short recipe, 8 epochs on all 55,000 training images, seeds 0-2
      $PY benchmarks/fmnist_compare.py --preset fashion-short --epochs 8 --train-limit 0 --models rexnet_100 \
          --out $OUT/best --runs runs/fmnist_best ;;
    figure)  # rank vs accuracy over every trained model
      $PY benchmarks/fmnist_rank_accuracy.py ;;
    *) echo "unknown step $step (compare table2 lr search controlled best figure)" >&2; exit 2 ;;
  esac
done
