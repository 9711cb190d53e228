#!/usr/bin/env bash
# The baselines that need many epochs (or are slow on CPUs), on a GPU for seeds given, appended
# as JSON lines to OUT/results.jsonl (as benchmarks/gpu_baselines.sh; its one() function).
#   bash benchmarks/gpu_converged.sh OUT_DIR "1 2"
# Needs processed/music-seed<S> for each seed (prepared on a machine with the raw data).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}
seeds=${2:-"1 2"}
source <(sed -n '/^one() {/,/^}/p' benchmarks/gpu_baselines.sh)
mkdir -p "$out/runs"
for s in $seeds; do one ckan "$s" 40 5; done
for s in $seeds; do one lightgcn "$s" 300 10; done
for s in $seeds; do one kgat "$s" 300 10; done
for s in $seeds; do one kgin "$s" 300 10; done
wc -l "$out/results.jsonl"
