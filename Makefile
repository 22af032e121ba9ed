# churnops — make help lists the targets. Everything installs under .venv/ and .tools/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
CHURNOPS    := $(VENV)/bin/churnops
TOOLS       ?= .tools
CONSTRAINTS := requirements/constraints.txt
export PATH := $(CURDIR)/$(TOOLS)/bin:$(PATH)

# Fragments in mk/ add their own targets; they append prerequisites of `make test` here.
TEST_DEPS := setup lint

.PHONY: help setup system-deps lint format test test-unit demo bench bench-train bench-pipeline \
        bench-rollout pipelines clean lock

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: system-deps $(VENV)/.installed ## install Python deps into .venv/ and system tools (idempotent)
	@$(PY) -m compileall -q -j 0 src >/dev/null || true

# Debian packages the tests and benchmarks run for real: prometheus/promtool, wrk.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  echo ">> installing Debian packages:$$missing" >&2; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml setup.py $(CONSTRAINTS) $(wildcard src/churnops/*/*.c)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check "uv==0.13.9"
	$(VENV)/bin/uv pip install -q --python $(PY) -c $(CONSTRAINTS) -e ".[dev]"
	@# Bytecode once, here: where PYTHONDONTWRITEBYTECODE is set (this machine, CI), every
	@# process would otherwise compile mlflow, sklearn, pandas... from source at each start
	@# (`import mlflow, sklearn, pandas, kfp`: 16.6 s -> 5.9 s). A file that does not
	@# compile is one no import reaches.
	@echo ">> setup: compiling the venv's bytecode" >&2
	@$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	@touch $@

lock: ## re-resolve requirements/constraints.txt from pyproject.toml
	@test -x $(VENV)/bin/uv || (python3 -m venv $(VENV) && $(PY) -m pip install -q "uv==0.13.9")
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra server --python-version 3.11 -q -o $(CONSTRAINTS)

lint: setup ## ruff lint + format check, mypy on src/
	$(VENV)/bin/ruff check src tests serving benchmarks monitoring scripts
	$(VENV)/bin/ruff format --check src tests serving benchmarks monitoring scripts
	$(VENV)/bin/mypy src/churnops --ignore-missing-imports

format: setup ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests serving benchmarks monitoring scripts
	$(VENV)/bin/ruff format src tests serving benchmarks monitoring scripts

-include mk/*.mk

test: $(TEST_DEPS) ## lint, then the whole suite: unit, integration (real servers), k8s (offline + live control plane), containers
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## fast in-process tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

demo: setup ## the whole flow on this machine, embedded defaults, no cluster
	$(CHURNOPS) demo --prometheus-rules monitoring/prometheus

pipelines: setup ## compile the KFP pipeline spec (src/churnops/training/churn_training.yaml; pipelines/ links it)
	$(CHURNOPS) pipeline compile --out src/churnops/training/churn_training.yaml

bench: bench-train bench-pipeline bench-rollout ## all benchmarks (figures land in benchmarks/results/)

bench-train: setup ## churnops train on 1M rows; XGBoost fit vs plain xgboost.train; ingest throughput
	$(PY) benchmarks/bench_train.py

bench-pipeline: setup ## kfp.local pipeline vs churnops train on 7k and 200k rows: orchestration overhead
	$(PY) benchmarks/bench_pipeline.py

bench-rollout: setup ## canary time-to-rollback / time-to-promotion and decision accuracy (real Prometheus)
	$(PY) benchmarks/bench_rollout.py

clean: ## remove local state (.churnops/), keep .venv and .tools
	rm -rf .churnops .pytest_cache
