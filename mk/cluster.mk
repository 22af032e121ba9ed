# A local Kubernetes control plane built from source (docs/deploy.md, "A local control plane").
# Included by the top-level Makefile (VENV, PY, TOOLS come from there). Versions:
# manifests/versions.env. Binaries are cached in ~/.cache/churnops/<component>-<version>/.

# tests/cluster runs in `make test` (TEST_DEPS += cluster-tools below: the binaries are built
# first, from ~/.cache/churnops/ in seconds when warm) and alone with `make test-cluster`; the
# session fixture starts the cluster (scripts/cluster/up.sh) and stops it (down.sh) itself.
# Cost: docs/deploy.md, "A local control plane".
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
