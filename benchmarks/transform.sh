#!/usr/bin/env bash
# Eq. 16's feature transformation, learned (the paper) vs identity (MI-KGNN's default), for
# MI-KGNN and KGCN. Table 1, best epoch by validation AUC (patience 5, at most $EPOCHS epochs),
# full-ranking top-K; one run per seed, two at a time with one thread each.
#   benchmarks/transform.sh music "0 1 2"      then: python benchmarks/summarize.py runs/transform-music
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
# shellcheck source=benchmarks/two_at_a_time.sh
source benchmarks/two_at_a_time.sh
DATASET=${1:-music}
SEEDS=${2:-0 1 2}
EPOCHS=${EPOCHS:-40}
RUNS=${RUNS:-mikgnn-identity mikgnn-learned kgcn-identity kgcn-learned}
run() {
  local model=${1%-*} transform=${1##*-}
  .venv/bin/python pipelines/train.py --dataset "$DATASET" --model "$model" --set transform="$transform" --seed "$2" \
    --epochs "$EPOCHS" --set patience=5 --set threads=1 --output "runs/transform-$DATASET/$1-seed$2" \
    > "runs/transform-$DATASET/$1-seed$2.log" 2>&1
}
mkdir -p "runs/transform-$DATASET"
# shellcheck disable=SC2086
two_at_a_time run "$SEEDS" $RUNS
