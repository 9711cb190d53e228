#!/usr/bin/env bash
# A small grid over the learning rate and λ for MI-KGNN and KGCN, the same budget for both
# (seed 0, best epoch by validation AUC, patience 5, full-ranking top-K). Choose by the
# validation columns, read the test columns.
#   benchmarks/sweep.sh music        then: python benchmarks/summarize.py runs/sweep-music
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
DATASET=${1:-music}
LRS=${LRS:-5e-4 2e-3}
L2S=${L2S:-9.1e-5 1e-5}
for model in mikgnn kgcn; do
  for lr in $LRS; do
    for l2 in $L2S; do
      .venv/bin/python pipelines/train.py --dataset "$DATASET" --model "$model" --set lr="$lr" --set l2="$l2" \
        --epochs 40 --set patience=5 --output "runs/sweep-$DATASET/$model-lr$lr-l2$l2-seed0" "${@:2}"
    done
  done
done
