#!/usr/bin/env bash
# The baselines that need many epochs (or are slow on CPUs), on a GPU for seeds given, appended
# as JSON lines to OUT/results.jsonl (as benchmarks/gpu_baselines.sh; its one() function).
#   bash benchmarks/gpu_converged.sh OUT_DIR "1 2"
# MODELS="kgin" runs only those (default: ckan lightgcn kgat kgin); DEVICE=cpu runs on the CPU.
# Needs processed/music-seed<S> for each seed (prepared on a machine with the raw data).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
out=${1:?output folder}
seeds=${2:-"1 2"}
models=${MODELS:-"ckan lightgcn kgat kgin"}
source <(sed -n '/^one() {/,/^}/p' benchmarks/gpu_baselines.sh)
mkdir -p "$out/runs"
for m in $models; do
  for s in $seeds; do
    if [ "$m" = ckan ]; then one ckan "$s" 40 5; else one "$m" "$s" 300 10; fi
  done
done
wc -l "$out/results.jsonl"
