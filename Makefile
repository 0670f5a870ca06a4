# The two commands: `make run` (bootstrap .venv, run the default pipeline) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# MLflow 3 reads only its own switch (DO_NOT_TRACK=1 does not turn its telemetry off)
export MLFLOW_DISABLE_TELEMETRY := true
export GIT_PYTHON_REFRESH := quiet

.PHONY: lock run test lint typecheck unit docs ui prefect-server tracking-server retrain push pull clean-state help

help:
	@echo "make run | test | docs | ui | prefect-server | tracking-server | retrain | push | pull"

# Installs from the lock (requirements/lock.txt, pip constraints): a fresh machine gets the versions the
# tests passed with, not whatever the index holds that day.
LOCK := requirements/lock.txt
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -c $(LOCK) torch==2.13.0
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

## Re-resolve the lock from pyproject.toml in a throwaway venv (newest allowed versions), then run
## `make test` and commit requirements/lock.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip setuptools wheel
	.lock-venv/bin/pip install --quiet torch==2.13.0
	.lock-venv/bin/pip install --quiet -e '.[dev,tracking-server]'
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .lock-venv

## Run the default pipeline (`dlops run`: dvc repro holding the workspace lock), then print and record the
## leaderboard.
run: $(STAMP)
	export DLOPS_PIPELINE_RUN_ID=$${DLOPS_PIPELINE_RUN_ID:-make-$$(date -u +%Y%m%dT%H%M%SZ)}; \
	$(BIN)/dlops run

## ruff, mypy, the docs site (--strict: a broken link fails) and pytest (the integration tier included);
## two pytest workers (pytest-xdist; a test file stays on one worker, so its module fixtures are built
## once), and the 25 slowest tests listed at the end, so the suite's time is visible in every CI log.
test: $(STAMP) lint typecheck docs
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines benchmarks
	$(BIN)/ruff format --check src tests pipelines benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## The documentation site (mkdocs-material, mkdocs.yml) into site/; strict, so a broken link or a page
## missing from the nav fails.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

## MLflow UI over the project's store, loopback only.
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

## A local Prefect server (keep it running; then `dlops schedule` or `make retrain` in another shell).
prefect-server: $(STAMP)
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

## MLflow tracking server on a local PostgreSQL (deploy/tracking_server.sh), loopback only; Ctrl-C stops
## both. Point the pipeline at it with MLFLOW_TRACKING_URI=http://127.0.0.1:5000.
tracking-server: $(STAMP)
	$(BIN)/python -c 'import psycopg2' 2>/dev/null || $(BIN)/pip install --quiet -e '.[tracking-server]'
	MLFLOW=$(BIN)/mlflow deploy/tracking_server.sh

retrain: $(STAMP)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(BIN)/python pipelines/retrain.py

push: $(STAMP)
	$(BIN)/dvc push

pull: $(STAMP)
	$(BIN)/dvc pull

## Forget resume checkpoints and locks (never touches data, models or the MLflow store).
clean-state:
	rm -rf .dlops
