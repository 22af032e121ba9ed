# Container images: the engine, the offline base image, the two churnops images, kind load /
# registry push (included by the top-level Makefile). Design and usage: docs/images.md.
#
# Names and tags come from one place: the chart's appVersion (charts/churnops/Chart.yaml).
#   make images                          build both; kind: load into the cluster's nodes
#   make images CLUSTER=cloud REGISTRY=ghcr.io/acme    build, tag with the prefix, push
#   make images-build                    build both, load/push nothing (what `make test` uses)

DOCKER       ?= docker
KIND         ?= kind
CLUSTER      ?= kind
KIND_CLUSTER ?= churnops
REGISTRY     ?=
IMAGE_TAG    := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/churnops/Chart.yaml)
IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY)/,)
COMPONENTS_IMAGE := $(IMAGE_PREFIX)churnops/components:$(IMAGE_TAG)
SERVING_IMAGE    := $(IMAGE_PREFIX)churnops/serving:$(IMAGE_TAG)
# The base both Dockerfiles build FROM (their ARG PYTHON_IMAGE default, or PYTHON_IMAGE=...).
PYTHON_IMAGE ?= $(shell sed -n 's/^ARG PYTHON_IMAGE=//p' serving/Dockerfile)
# The tests and the benchmark run exactly these tags.
export CHURNOPS_COMPONENTS_IMAGE := $(COMPONENTS_IMAGE)
export CHURNOPS_SERVING_IMAGE    := $(SERVING_IMAGE)

# A TLS-intercepting network's CA bundle, handed to the build stage as a BuildKit secret
# (never a layer); `CA_BUNDLE=` to build without one.
CA_BUNDLE    ?= $(SSL_CERT_FILE)
BUILD_SECRET  = $(if $(wildcard $(CA_BUNDLE)),--secret id=ca$(comma)src=$(CA_BUNDLE),)
comma := ,
# `docker build` with BuildKit (buildx, or the BuildKit client in Debian's docker.io CLI).
DOCKER_BUILD  = $(shell DOCKER=$(DOCKER) bash scripts/docker-engine.sh --build-command)
# --network host: the build reaches PyPI and Debian the way this host does.
BUILD_FLAGS  ?= --network host
BUILD         = $(DOCKER_BUILD) $(BUILD_FLAGS) $(BUILD_SECRET) --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)

# `make test` runs tests/containers: it needs the engine and both images.
TEST_DEPS += images-build

.PHONY: docker-engine docker-engine-stop base-image images-build image-components \
        image-serving images bench-images

docker-engine: ## a Docker Engine: the one on DOCKER_HOST/default socket, else Debian's dockerd started for the project
	@DOCKER=$(DOCKER) bash scripts/docker-engine.sh

docker-engine-stop: ## stop the dockerd `make docker-engine` started (an engine it found is left alone)
	@DOCKER=$(DOCKER) bash scripts/docker-engine.sh --stop

base-image: docker-engine ## PYTHON_IMAGE: present, pulled, or offline a debootstrap'ed bookworm + Debian python3 (idempotent)
	@DOCKER=$(DOCKER) bash scripts/base-image.sh $(PYTHON_IMAGE)

image-components: base-image ## build churnops/components:<appVersion> (KFP steps, MLflow server, rollout)
	@echo ">> building $(COMPONENTS_IMAGE)" >&2
	$(BUILD) -f components/Dockerfile -t $(COMPONENTS_IMAGE) .

image-serving: base-image ## build churnops/serving:<appVersion> (the model server)
	@echo ">> building $(SERVING_IMAGE)" >&2
	$(BUILD) -f serving/Dockerfile -t $(SERVING_IMAGE) .

images-build: image-components image-serving ## build both images, load/push nothing
	@$(DOCKER) image inspect -f '{{.Size}}' $(COMPONENTS_IMAGE) $(SERVING_IMAGE) | paste -sd' ' | \
	  awk '{printf "{\"components\": \"%s\", \"components_bytes\": %s, \"serving\": \"%s\", \"serving_bytes\": %s}\n", \
	    "$(COMPONENTS_IMAGE)", $$1, "$(SERVING_IMAGE)", $$2}'

images: images-build ## build churnops/components + churnops/serving:<appVersion>; kind: load; CLUSTER=cloud: push to REGISTRY
ifeq ($(CLUSTER),kind)
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(COMPONENTS_IMAGE) $(SERVING_IMAGE)
else
	@test -n "$(REGISTRY)" || { echo "CLUSTER=$(CLUSTER) needs REGISTRY=<registry/prefix>" >&2; exit 2; }
	$(DOCKER) push $(COMPONENTS_IMAGE)
	$(DOCKER) push $(SERVING_IMAGE)
endif

BENCH_IMAGES_ARGS ?=

bench-images: setup images-build ## image sizes, cold/cached builds, serving start-to-ready, DockerRunner vs SubprocessRunner (BENCH_IMAGES_ARGS=--no-pipeline|--cold)
	$(PY) benchmarks/bench_images.py $(BENCH_IMAGES_ARGS)
