# A local Kubernetes control plane built from source (docs/deploy.md, "A local control plane").
# Included by the top-level Makefile (VENV, PY, TOOLS come from there). Versions:
# manifests/versions.env. Binaries are cached in ~/.cache/churnops/<component>-<version>/.

# `make test` runs tests/cluster against it: the binaries must be there (the session fixture
# starts and stops the cluster itself).
TEST_DEPS += cluster-tools

.PHONY: cluster-tools cluster-up cluster-down

cluster-tools: ## build kube-apiserver/controller-manager/scheduler, etcd, kwok(ctl), KServe controller from the Go proxy (cached)
	@bash scripts/cluster/build.sh

cluster-up: setup tools cluster-tools ## local control plane: kwok nodes, PodSecurity, CRDs, KServe controller + webhooks; prints the kubeconfig
	@TOOLS=$(TOOLS) PY=$(PY) bash scripts/cluster/up.sh

cluster-down: ## stop the local control plane and the KServe controller, remove .churnops/cluster
	@TOOLS=$(TOOLS) PY=$(PY) bash scripts/cluster/down.sh
