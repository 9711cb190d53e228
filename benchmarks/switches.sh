#!/usr/bin/env bash
# The switches of issue 3, each flipped alone from the defaults: batch-only vs full-table L2,
# dot vs mean attention logits, summed vs averaged neighbourhood vector, plus relation
# embeddings exempt from L2. MI-KGNN, Table 1, best epoch by validation AUC (patience 5, at most
# 40 epochs), full-ranking top-K; one run per seed, two at a time with one thread each.
#   benchmarks/switches.sh music "0 1 2"      then: python benchmarks/summarize.py runs/switches-music
#   EXTRA="--set transform=learned" OUT=runs/switches-music-learned benchmarks/switches.sh music "0 1 2"
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
# shellcheck source=benchmarks/two_at_a_time.sh
source benchmarks/two_at_a_time.sh
DATASET=${1:-music}
SEEDS=${2:-0 1 2}
EXTRA=${EXTRA:-}
OUT=${OUT:-runs/switches-$DATASET}
declare -A SWITCHES=(
  [defaults]=""
  [l2-batch]="--set l2_mode=batch"
  [logits-dot]="--set logits=dot"
  [neighbours-sum]="--set neighbour_vector=sum"
  [no-relation-l2]="--set l2_relations=false"
)
run() {
  # shellcheck disable=SC2086
  .venv/bin/python pipelines/train.py --dataset "$DATASET" --seed "$2" --epochs 40 --set patience=5 --set threads=1 \
    ${SWITCHES[$1]} $EXTRA --output "$OUT/$1-seed$2" > "$OUT/$1-seed$2.log" 2>&1
}
mkdir -p "$OUT"
two_at_a_time run "$SEEDS" "${!SWITCHES[@]}"
