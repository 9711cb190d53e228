#!/usr/bin/env bash
# System packages the tests need: Debian's chromium for the headless-browser check of the
# MLflow UI. Installed once; skipped when present or when apt is not available (the browser
# test then skips with the reason).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  echo "installed $(chromium --version)"
else
  echo "chromium not installed and cannot install it here (need root and apt-get)" >&2
fi
