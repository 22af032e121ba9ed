#!/usr/bin/env bash
# helm upgrade --install churnops onto the current kube context, wait, print the endpoints.
#   CLUSTER=kind  (default) values charts/churnops/ci/kind-values.yaml, images loaded by `make images`
#   CLUSTER=cloud values charts/churnops/ci/cloud-values.yaml (+ CHURNOPS_VALUES=your-overrides.yaml),
#                 images from REGISTRY (pushed by `make images CLUSTER=cloud REGISTRY=...`)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS:-.tools}
export PATH="$PWD/$TOOLS/bin:$PATH"
CLUSTER=${CLUSTER:-kind}
NAMESPACE=${NAMESPACE:-churnops}
RELEASE=${RELEASE:-churnops}
REGISTRY=${REGISTRY:-}

case "$CLUSTER" in
  kind|cloud) ;;
  *) echo "CLUSTER must be kind or cloud (got $CLUSTER)" >&2; exit 2 ;;
esac

args=(upgrade --install "$RELEASE" charts/churnops --namespace "$NAMESPACE"
      -f "charts/churnops/ci/${CLUSTER}-values.yaml" --server-side=true --wait --timeout 15m)
if [[ -n "${CHURNOPS_VALUES:-}" ]]; then args+=(-f "$CHURNOPS_VALUES"); fi
if [[ -n "$REGISTRY" ]]; then args+=(--set "images.registry=$REGISTRY"); fi
if [[ "$CLUSTER" == cloud && -z "$REGISTRY" ]]; then
  echo "warning: CLUSTER=cloud without REGISTRY uses the registry in ci/cloud-values.yaml" >&2
fi

echo ">> namespaces and cluster config (manifests/overlays/$CLUSTER)" >&2
kubectl apply --server-side --force-conflicts -k "manifests/overlays/$CLUSTER"
echo ">> helm ${args[*]}" >&2
helm "${args[@]}"

kubectl -n "$NAMESPACE" wait --for=condition=Ready "inferenceservice/churn" --timeout=600s || {
  echo "InferenceService not ready yet (it needs a champion model: run make pipeline-run)" >&2; }
echo
kubectl -n "$NAMESPACE" get inferenceservice,deploy,statefulset,svc
echo
helm status "$RELEASE" --namespace "$NAMESPACE" --show-resources=false | sed -n '/^NOTES:/,$p'
