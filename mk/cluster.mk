# A local Kubernetes control plane built from source (docs/deploy.md, "A local control plane").
# Included by the top-level Makefile (VENV, PY, TOOLS come from there). Versions:
# manifests/versions.env. Binaries are cached in ~/.cache/churnops/<component>-<version>/.

# tests/cluster is part of `make test`: the session fixture starts the control plane
# (scripts/cluster/up.sh, ~40 s with the binaries cached) and stops it at the end. A cold
# `make cluster-tools` builds the binaries first (long on 2 cores: docs/deploy.md has the
# figures); the cache under ~/.cache/churnops/ makes a rerun take seconds.
TEST_DEPS += cluster-tools

.PHONY: cluster-tools cluster-up cluster-down test-cluster

cluster-tools: ## build kube-apiserver/controller-manager/scheduler, etcd, kwok(ctl), KServe controller from the Go proxy (cached)
	@bash scripts/cluster/build.sh

cluster-up: setup tools cluster-tools ## local control plane: kwok nodes, PodSecurity, CRDs, KServe controller + webhooks; prints the kubeconfig
	@TOOLS=$(TOOLS) PY=$(PY) bash scripts/cluster/up.sh

cluster-down: ## stop the local control plane and the KServe controller, remove .churnops/cluster
	@TOOLS=$(TOOLS) PY=$(PY) bash scripts/cluster/down.sh

test-cluster: setup tools cluster-tools ## tests/cluster: chart, KServe webhooks/controller, RBAC, deploy.sh, canary on the local control plane
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)
