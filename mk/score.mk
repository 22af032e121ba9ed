# Batch scoring and the MLflow consumers of the model (included by the top-level Makefile).
.PHONY: bench-score mlserver-churnops

# Same value as mk/serve.mk's (included after this file).
MLSERVER_VENV ?= $(TOOLS)/mlserver-venv

# MLServer loads the model's python_function flavor, i.e. churnops.model.pyfunc: churnops
# goes into MLServer's own venv (mk/serve.mk), without dependencies (the venv pins its own).
$(MLSERVER_VENV)/.churnops: pyproject.toml setup.py $(MLSERVER_VENV)/.installed
	$(VENV)/bin/uv pip install -q --python $(MLSERVER_VENV)/bin/python --no-deps -e .
	@touch $@

mlserver-churnops: $(MLSERVER_VENV)/.churnops ## churnops inside MLServer's venv (the pyfunc flavor's loader)

mlserver-venv: $(MLSERVER_VENV)/.churnops
bench-serve: $(MLSERVER_VENV)/.churnops
TEST_DEPS += $(MLSERVER_VENV)/.churnops

bench: bench-score

BENCH_SCORE_ARGS ?=

bench-score: setup ## churnops score vs read_csv + pyfunc.predict on 1M/10M rows, Spark engine -> benchmarks/results/score.json
	$(PY) benchmarks/bench_score.py $(BENCH_SCORE_ARGS)
