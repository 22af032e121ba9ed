# Kubernetes targets: tools, offline validation, kind cluster, deploy, e2e (images: mk/images.mk).
# Included by the top-level Makefile (VENV, PY, TOOLS, CHURNOPS come from there).
# Third-party versions: manifests/versions.env. Design and usage: docs/deploy.md.

CLUSTER      ?= kind
KIND_CLUSTER ?= churnops
NAMESPACE    ?= churnops
RELEASE      ?= churnops
REGISTRY     ?=
KIND         ?= kind
K8S_ENV      := KIND_CLUSTER=$(KIND_CLUSTER) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) \
                REGISTRY=$(REGISTRY) CLUSTER=$(CLUSTER) TOOLS=$(TOOLS) CHURNOPS=$(CHURNOPS)

# `make test` renders and validates the chart: it needs helm, kubectl and checkov.
TEST_DEPS += tools

.PHONY: tools dashboards chart-assets k8s-validate kind-up deploy pipeline-run e2e kind-down

tools: ## helm v4.1 + kubectl v1.35 into .tools/bin, checkov into .tools/checkov-venv (idempotent)
	@bash scripts/install-tools.sh $(TOOLS)

chart-assets: ## copy monitoring/ rules + dashboards into charts/churnops/files/ (commit the result)
	@$(PY) scripts/sync_chart_assets.py

dashboards: setup ## regenerate the Grafana dashboards (monitoring/grafana/generate.py) and their chart copies (commit both)
	@$(PY) monitoring/grafana/generate.py >&2
	@$(PY) scripts/sync_chart_assets.py

k8s-validate: setup tools ## offline: helm lint/template, K8s + CRD schemas, policy, checkov (tests/k8s)
	$(PY) -m pytest tests/k8s -q $(PYTEST_ARGS)

kind-up: tools ## kind cluster + cert-manager, Knative/Kourier, KServe, KFP, kube-prometheus-stack; waits
	@$(K8S_ENV) bash scripts/kind-up.sh

deploy: tools chart-assets ## helm upgrade --install churnops (CLUSTER=kind|cloud), wait, print endpoints
	@$(K8S_ENV) bash scripts/deploy.sh

pipeline-run: setup tools ## submit the training pipeline to the cluster's KFP (port-forward)
	@$(K8S_ENV) bash scripts/pipeline-run.sh

e2e: setup tools ## on kind: pipeline -> champion, inferences via ingress, canary rollout, Prometheus series
	@$(K8S_ENV) bash scripts/e2e.sh

kind-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
