# The two commands a fresh machine needs (see README):
#   make run    installs everything, then runs the main job (the Tune search) on the default dataset
#   make test   installs everything, then runs the linter and the whole test suite
PY := .venv/bin/python
DATASET ?= music
# Datasets: --data-root flag, else $MIKGNN_DATA_ROOT, else ./data (a checkout beside shared/ uses it).
export MIKGNN_DATA_ROOT ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),data)

.PHONY: install run test lint bench-prepare

install:
	./scripts/install.sh

run: install
	$(PY) pipelines/tune.py --dataset $(DATASET) --download

lint: install
	$(PY) -m ruff check --output-format concise .

test: lint
	./scripts/install_test_deps.sh
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

bench-prepare: install
	$(PY) benchmarks/prepare_scale.py
