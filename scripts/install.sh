#!/usr/bin/env bash
# Create .venv and install mikgnn with its dev tools. Idempotent: re-runs only when
# pyproject.toml changed. TORCH_SPEC picks the PyTorch build:
#   CPU machine (default): torch==2.13.0, the local CPU build (no CUDA packages);
#   GPU machine:           TORCH_SPEC="torch" (or a CUDA wheel index via PIP_EXTRA_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-.venv}
stamp="$VENV/.mikgnn-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned, so that the project's own "torch>=..." is already satisfied.
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "$want" > "$stamp"
echo "installed mikgnn into $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
