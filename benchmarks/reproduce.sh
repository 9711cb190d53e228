#!/usr/bin/env bash
# Paper protocol on one dataset: MI-KGNN, KGCN and MF, Table 1 hyperparameters, best epoch by
# validation AUC (patience 5, at most 40 epochs), full-ranking top-K; one run per seed.
#   benchmarks/reproduce.sh music "0 1 2"      then: python benchmarks/summarize.py runs/repro-music
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
DATASET=${1:-music}
SEEDS=${2:-0 1 2}
EPOCHS=${EPOCHS:-40}
for seed in $SEEDS; do
  for model in mikgnn kgcn mf; do
    .venv/bin/python pipelines/train.py --dataset "$DATASET" --model "$model" --seed "$seed" \
      --epochs "$EPOCHS" --set patience=5 --output "runs/repro-$DATASET/$model-seed$seed"
  done
done
