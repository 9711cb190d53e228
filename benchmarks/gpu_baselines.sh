#!/usr/bin/env bash
# The baselines' music runs on a GPU (one process each, no Ray), appended as JSON lines to
# OUT/results.jsonl: the slow-learning-rate models to convergence first, then every model at
# seeds 1 and 2 with the CPU runs' settings.
#   bash benchmarks/gpu_baselines.sh OUT_DIR
# DEVICE=cpu runs the same on the CPU (default cuda).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
out=${1:?output folder}
mkdir -p "$out/runs"
one() {  # model seed epochs patience
  python3 pipelines/train.py --dataset music --model "$1" --seed "$2" --epochs "$3" --set patience="$4" \
    --set device="${DEVICE:-cuda}" --output "$out/runs/$1-s$2-e$3" > "$out/runs/$1-s$2-e$3.log" 2>&1 || echo "failed: $1 $2"
  python3 - "$out/runs/$1-s$2-e$3/metrics.json" "$1" "$2" "$3" >> "$out/results.jsonl" <<'PY'
import json, sys
from pathlib import Path
p = Path(sys.argv[1])
if p.is_file():
    r = json.loads(p.read_text())
    keep = {k: v for k, v in r.items() if k.startswith("test/") or k.startswith("valid/")}
    print(json.dumps({"model": sys.argv[2], "seed": int(sys.argv[3]), "max_epochs": int(sys.argv[4]),
                      "best_epoch": r["best_epoch"], "epochs_run": len(r["epoch_seconds"]),
                      "median_epoch_s": sorted(r["epoch_seconds"])[len(r["epoch_seconds"]) // 2], **keep}))
PY
}
one ckan 0 40 5
for m in kgat kgin lightgcn; do one "$m" 0 300 10; done
for s in 1 2; do
  for m in mf svd fm fm-transe per cke ripplenet kgcn kgcn-ls ckan agcn mikgnn; do one "$m" "$s" 40 5; done
  for m in kgat kgin lightgcn; do one "$m" "$s" 300 10; done
done
wc -l "$out/results.jsonl"
