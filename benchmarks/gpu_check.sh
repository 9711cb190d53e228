#!/usr/bin/env bash
# Issue 34's device check (benchmarks/gpu_check.py): every figure a JSON line in OUT/figures.jsonl.
#   bash benchmarks/gpu_check.sh OUT [--cpu]
# On the offline GPU machine, the Ray + MLflow + Optuna site packed by
# ../shared/tools/offline-site.sh travels as gpu_site.tar.xz (SITE_TAR) and is unpacked first;
# the datasets as data/ (MIKGNN_DATA_ROOT). --cpu is the dry run here: tiny, no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}; shift
if [ -n "${SITE_TAR:-}" ]; then
  mkdir -p /tmp/site && tar xJf "$SITE_TAR" -C /tmp/site
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
{ command -v nvidia-smi >/dev/null && nvidia-smi -L; nproc; } > "$out/machine.txt" 2>&1
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$out" "$@"
