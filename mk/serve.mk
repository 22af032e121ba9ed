# Model server: run it alone, and its benchmark (included by the top-level Makefile).
.PHONY: serve bench-serve mlserver-venv fuzz-decoder

SERVE_ARGS ?=
# MLServer (+ mlserver-mlflow) is benchmarked from its own venv: its fastapi pin conflicts
# with the main one. Rebuilt only when requirements/mlserver.txt changes (stamp file).
MLSERVER_VENV := $(TOOLS)/mlserver-venv

serve: setup ## run the model server alone on :8080 (CHURNOPS_MODEL_URI, MLFLOW_TRACKING_URI; SERVE_ARGS=...)
	$(CHURNOPS) serve --http-port 8080 $(SERVE_ARGS)

bench: bench-serve

bench-serve: setup $(MLSERVER_VENV)/.installed ## churnops serve vs mlflow models serve vs MLServer with wrk: p50/p99, req/s, rows/s -> benchmarks/results/serve.json
	$(PY) benchmarks/bench_serve.py --mlserver $(MLSERVER_VENV)/bin/mlserver

mlserver-venv: $(MLSERVER_VENV)/.installed ## MLServer + mlserver-mlflow in .tools/mlserver-venv (for bench-serve)

# uv comes from the main venv (order-only: reinstalling that one does not redo this one).
$(MLSERVER_VENV)/.installed: requirements/mlserver.txt | $(VENV)/.installed
	@test -x $(MLSERVER_VENV)/bin/python || python3 -m venv $(MLSERVER_VENV)
	$(VENV)/bin/uv pip install -q --python $(MLSERVER_VENV)/bin/python -r requirements/mlserver.txt
	@$(MLSERVER_VENV)/bin/python -m compileall -q -j 0 $(MLSERVER_VENV)/lib >/dev/null || true  # as the main venv's (Makefile)
	@touch $@

FUZZ_ITERATIONS ?= 50000
# The compiled decoder stays because it earns it (bench-serve: 2.15x V1 batch rows/s over
# msgspec Structs); parsing untrusted bytes in C, it is fuzzed under the sanitizers on
# every `make test`.
TEST_DEPS += fuzz-decoder

fuzz-decoder: setup ## the compiled request decoder under ASan + UBSan: mutated bodies vs the reference path
	$(PY) scripts/fuzz_decoder.py --iterations $(FUZZ_ITERATIONS)
