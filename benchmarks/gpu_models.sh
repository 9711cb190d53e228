#!/usr/bin/env bash
# Every model of the comparison on a GPU, one process each (no Ray): seconds per training epoch,
# seconds of one full-ranking evaluation, peak GPU memory; then MI-KGNN's seconds per epoch at
# h = 1..4 (Table 7's axis; full field, n = 8, sampled top-K so the deep grids stay short).
#   bash benchmarks/gpu_models.sh OUT_DIR [EPOCHS]
# Needs processed/music-seed0 (python pipelines/prepare.py --dataset music) and a CUDA torch.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the entry scripts import the package: installed, or this checkout
out=${1:?output folder}
epochs=${2:-3}
mkdir -p "$out/runs"
models="mf svd fm fm-transe per cke ripplenet kgcn kgcn-ls kgat ckan kgin agcn lightgcn mikgnn"
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
for m in $models; do
  echo "== $m"
  python3 pipelines/train.py --dataset music --model "$m" --epochs "$epochs" --set patience=100 \
    --set device=cuda --output "$out/runs/$m" 2>&1 | grep -E "^(epoch|best|error|Traceback|  File|\w+Error)" || true
done
for h in 1 2 3 4; do
  echo "== mikgnn h=$h"
  python3 pipelines/train.py --dataset music --epochs 1 --set hops=$h --set protocol=sampled \
    --set device=cuda --output "$out/runs/mikgnn-h$h" 2>&1 | grep -E "^(epoch|best|error|\w+Error)" || true
done
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = {}
for path in sorted(Path(sys.argv[1], "runs").glob("*/metrics.json")):
    r = json.loads(path.read_text())
    rows[path.parent.name] = {"epoch_seconds": r["epoch_seconds"], "test_seconds": r["test/seconds"],
                              "test_auc": r["test/auc"], "test_recall@20": r["test/recall@20"],
                              "protocol": r["protocol"]["topk"][:40]}
Path(sys.argv[1], "gpu_models.json").write_text(json.dumps(rows, indent=1) + "\n")
for name, r in rows.items():
    print(f"{name:14s} s/epoch {min(r['epoch_seconds']):7.3f}  eval {r['test_seconds']:7.2f}  auc {r['test_auc']:.4f}")
PY
