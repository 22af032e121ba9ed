# Model server: run it alone, and its benchmark (included by the top-level Makefile).
.PHONY: serve bench-serve

SERVE_ARGS ?=

serve: setup ## run the model server alone on :8080 (CHURNOPS_MODEL_URI, MLFLOW_TRACKING_URI; SERVE_ARGS=...)
	$(CHURNOPS) serve --http-port 8080 $(SERVE_ARGS)

bench: bench-serve

bench-serve: setup ## churnops serve vs mlflow models serve with wrk: p50/p99, req/s, rows/s -> benchmarks/results/serve.json
	$(PY) benchmarks/bench_serve.py
