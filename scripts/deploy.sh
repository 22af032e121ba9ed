#!/usr/bin/env bash
# helm upgrade --install churnops onto the current kube context, wait, print the endpoints.
#   CLUSTER=kind  (default) values charts/churnops/ci/kind-values.yaml, images loaded by `make images`
#   CLUSTER=local values charts/churnops/ci/local-values.yaml on `make cluster-up` (kubeconfig
#                 .churnops/cluster/kubeconfig unless KUBECONFIG is set)
#   CLUSTER=cloud values charts/churnops/ci/cloud-values.yaml (+ CHURNOPS_VALUES=your-overrides.yaml),
#                 images from REGISTRY (pushed by `make images CLUSTER=cloud REGISTRY=...`)
#
# A first install has no champion model yet, so the InferenceService cannot be Ready: Helm 4's
# default `--wait` (kstatus watcher) waits for custom resources' Ready condition and would fail
# the release after the timeout. The release therefore waits for what it owns and can make
# ready itself (Deployments, StatefulSets, PVCs, Services, Jobs: `--wait=legacy --wait-for-jobs`),
# and this script checks the InferenceService separately: accepted by KServe's webhook and
# reconciled, Ready once a champion exists (then it is reported, never a failure).
# Prerequisites checked before Helm runs: CRDs established, KServe's webhook answering and the
# kserve/inferenceservice-config ConfigMap present.
# Progress on stderr; the last stdout line is JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS:-.tools}
export PATH="$PWD/$TOOLS/bin:$PATH"
CLUSTER=${CLUSTER:-kind}
NAMESPACE=${NAMESPACE:-churnops}
RELEASE=${RELEASE:-churnops}
REGISTRY=${REGISTRY:-}
TIMEOUT=${DEPLOY_TIMEOUT:-15m}
ISVC=${ISVC_NAME:-churn}

fail() {
  echo "deploy: $*" >&2
  printf '{"ok": false, "error": "%s"}\n' "$(printf '%s' "$*" | sed 's/"/\\"/g')"
  exit 1
}

case "$CLUSTER" in
  kind|cloud) ;;
  local) export KUBECONFIG=${KUBECONFIG:-$PWD/.churnops/cluster/kubeconfig}
         [[ -f "$KUBECONFIG" ]] || fail "no local cluster ($KUBECONFIG missing): run make cluster-up" ;;
  *) fail "CLUSTER must be kind, local or cloud (got $CLUSTER)" ;;
esac
command -v helm >/dev/null && command -v kubectl >/dev/null || fail "helm/kubectl missing: run make tools"
kubectl version --request-timeout=10s >/dev/null 2>&1 || fail "no Kubernetes API server answers for the current context"

args=(upgrade --install "$RELEASE" charts/churnops --namespace "$NAMESPACE"
      -f "charts/churnops/ci/${CLUSTER}-values.yaml" --server-side=true
      --wait=legacy --wait-for-jobs --timeout "$TIMEOUT")
if [[ -n "${CHURNOPS_VALUES:-}" ]]; then args+=(-f "$CHURNOPS_VALUES"); fi
if [[ -n "${CHURNOPS_SET:-}" ]]; then args+=(--set "$CHURNOPS_SET"); fi
if [[ -n "$REGISTRY" ]]; then args+=(--set "images.registry=$REGISTRY"); fi
if [[ "$CLUSTER" == cloud && -z "$REGISTRY" ]]; then
  echo "warning: CLUSTER=cloud without REGISTRY uses the registry in ci/cloud-values.yaml" >&2
fi

echo ">> prerequisites: CRDs, KServe webhook and config" >&2
for crd in inferenceservices.serving.kserve.io podmonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com; do
  kubectl wait --for=condition=Established "crd/$crd" --timeout=60s >/dev/null 2>&1 ||
    fail "CRD $crd is not installed (make kind-up / make cluster-up installs KServe and prometheus-operator)"
done
kubectl -n kserve get configmap inferenceservice-config >/dev/null 2>&1 ||
  fail "ConfigMap kserve/inferenceservice-config missing: KServe is not installed"
# KServe's validating webhook answers before anything depends on it: a server-side dry run of
# a deliberately invalid InferenceService must be refused by the webhook, not by a timeout.
probe=$(kubectl create --dry-run=server -o name -f - 2>&1 <<EOF || true
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: churnops-webhook-probe, namespace: default}
spec: {predictor: {minReplicas: 3, maxReplicas: 1, containers: [{name: kserve-container, image: x}]}}
EOF
)
case "$probe" in
  *"denied the request"*) ;;
  *) fail "KServe's webhook is not answering (dry-run said: $(echo "$probe" | head -n 1))" ;;
esac

echo ">> namespaces and cluster config (manifests/overlays/$CLUSTER)" >&2
kubectl apply --server-side --force-conflicts -k "manifests/overlays/$CLUSTER" >&2
echo ">> helm ${args[*]}" >&2
helm "${args[@]}" >&2 || fail "helm upgrade --install failed (helm history $RELEASE -n $NAMESPACE)"

# The InferenceService: reconciled by KServe (observedGeneration caught up), Ready or not.
for _ in $(seq 60); do
  gen=$(kubectl -n "$NAMESPACE" get "inferenceservice/$ISVC" -o jsonpath='{.metadata.generation}/{.status.observedGeneration}' 2>/dev/null || true)
  [[ -n "$gen" && "${gen%/*}" == "${gen#*/}" ]] && break
  sleep 2
done
ready=$(kubectl -n "$NAMESPACE" get "inferenceservice/$ISVC" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
if [[ "$ready" != True ]]; then
  echo "InferenceService $ISVC not Ready yet: it needs a champion model (run make pipeline-run)" >&2
fi
revision=$(helm status "$RELEASE" --namespace "$NAMESPACE" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
{
  echo
  kubectl -n "$NAMESPACE" get inferenceservice,deploy,statefulset,svc
  echo
  helm status "$RELEASE" --namespace "$NAMESPACE" | sed -n '/^NOTES:/,$p'
} >&2
printf '{"ok": true, "release": "%s", "namespace": "%s", "revision": %s, "cluster": "%s", "inferenceservice_ready": %s}\n' \
  "$RELEASE" "$NAMESPACE" "$revision" "$CLUSTER" "$([[ "$ready" == True ]] && echo true || echo false)"
