#!/usr/bin/env bash
# Create the churnops kind cluster and install its dependencies at the versions pinned in
# manifests/versions.env, waiting until each is ready. Needs Docker and internet access
# (upstream release manifests and the kube-prometheus-stack chart); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../manifests/versions.env
set -a; source manifests/versions.env; set +a

TOOLS=${TOOLS:-.tools}
export PATH="$PWD/$TOOLS/bin:$PATH"
CLUSTER=${KIND_CLUSTER:-churnops}
log() { printf '\n>> %s\n' "$*" >&2; }

command -v docker >/dev/null || { echo "kind-up needs Docker" >&2; exit 1; }
if ! command -v kind >/dev/null || ! kind version | grep -q "${KIND_VERSION}"; then
  log "installing kind ${KIND_VERSION} into ${TOOLS}/bin"
  if command -v go >/dev/null; then
    GOBIN="$PWD/$TOOLS/bin" go install "sigs.k8s.io/kind@${KIND_VERSION}"
  else
    curl -fsSLo "$TOOLS/bin/kind" "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-amd64"
    chmod +x "$TOOLS/bin/kind"
  fi
fi

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "kind cluster $CLUSTER exists"
else
  log "creating kind cluster $CLUSTER (${KIND_NODE_IMAGE})"
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --image "${KIND_NODE_IMAGE}" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

log "cert-manager ${CERT_MANAGER_VERSION}"
kubectl apply --server-side -f "${CERT_MANAGER_URL}"
kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

log "Knative Serving ${KNATIVE_VERSION} + Kourier"
kubectl apply --server-side -f "${KNATIVE_CRDS_URL}"
kubectl wait --for=condition=Established crd --all --timeout=120s
kubectl apply --server-side -f "${KNATIVE_CORE_URL}"
kubectl apply --server-side -f "${KOURIER_URL}"
# Namespaces, Knative config (Kourier ingress, sslip.io domain, pod-spec features).
kubectl apply --server-side --force-conflicts -k manifests/overlays/kind
# Kourier on a fixed NodePort that kind-config.yaml maps to localhost:${KIND_INGRESS_PORT}.
kubectl -n kourier-system patch service kourier --type merge -p \
  '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"protocol":"TCP","targetPort":8080,"nodePort":31080}]}}'
kubectl -n knative-serving wait --for=condition=Available deployment --all --timeout=300s
kubectl -n kourier-system wait --for=condition=Available deployment --all --timeout=300s

log "KServe ${KSERVE_VERSION}"
kubectl apply --server-side -f "${KSERVE_URL}"
kubectl -n kserve wait --for=condition=Available deployment --all --timeout=300s
kubectl apply --server-side -f "${KSERVE_RUNTIMES_URL}"
# Kourier instead of Istio: no Istio VirtualServices.
kubectl -n kserve patch configmap inferenceservice-config --type merge -p \
  "$(kubectl -n kserve get configmap inferenceservice-config -o jsonpath='{.data.ingress}' |
     python3 -c 'import json,sys; d=json.load(sys.stdin); d["disableIstioVirtualHost"]=True; print(json.dumps({"data":{"ingress":json.dumps(d)}}))')"

log "Kubeflow Pipelines ${KFP_VERSION} (platform-agnostic)"
kubectl apply --server-side -k "${KFP_CLUSTER_SCOPED}"
kubectl wait --for=condition=Established crd/applications.app.k8s.io --timeout=120s
kubectl apply --server-side -k "${KFP_PLATFORM_AGNOSTIC}"
kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout=900s

log "kube-prometheus-stack ${KPS_CHART_VERSION}"
helm upgrade --install "${KPS_RELEASE}" kube-prometheus-stack --repo "${KPS_CHART_REPO}" \
  --version "${KPS_CHART_VERSION}" --namespace "${KPS_NAMESPACE}" --create-namespace \
  -f manifests/third-party/kube-prometheus-stack-values.yaml --wait --timeout 10m

log "cluster ready: $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
