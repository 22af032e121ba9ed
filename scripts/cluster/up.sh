#!/usr/bin/env bash
# A local Kubernetes control plane for churnops (make cluster-up), built from source:
#   kube-apiserver (admission plugins as in a real cluster: PodSecurity, webhooks, RBAC),
#   kube-controller-manager, kube-scheduler, etcd, kwok (two fake nodes: scheduled pods become
#   Running/Ready, no container runs), all run by `kwokctl --runtime binary`;
#   the upstream CRDs (KServe, prometheus-operator) from the pinned Go modules' sources;
#   the KServe controller as a host process with its admission webhooks registered against
#   certificates made here, and the kserve/inferenceservice-config ConfigMap as kind-up sets it.
# Idempotent: a running cluster is reused. State: .churnops/cluster/ (kubeconfig there).
# Progress on stderr; the last stdout line is JSON with the kubeconfig path.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
set -a; . manifests/versions.env; set +a
TOOLS=${TOOLS:-.tools}
PY=${PY:-.venv/bin/python}
export PATH="$ROOT/$TOOLS/bin:$PATH"
CACHE="${CHURNOPS_CACHE:-$HOME/.cache/churnops}"
NAME=${LOCAL_CLUSTER:-churnops}
STATE="$ROOT/.churnops/cluster"
KUBECONFIG_PATH="$STATE/kubeconfig"
export KUBECONFIG="$KUBECONFIG_PATH"
export KWOK_WORKDIR="$STATE/kwok"
export GOFLAGS="-mod=mod"

log() { printf 'cluster-up: %s\n' "$*" >&2; }
die() {
    printf 'cluster-up: %s\n' "$*" >&2
    printf '{"ok": false, "error": %s}\n' "$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$*")"
    exit 1
}
need() { [ -x "$1" ] || die "$2 missing at $1: run make cluster-tools"; }

K8S_BIN="$CACHE/kubernetes-$KUBERNETES_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
KWOK_BIN="$CACHE/kwok-$KWOK_VERSION/bin"
KSERVE_BIN="$CACHE/kserve-$KSERVE_CONTROLLER_VERSION/bin"
need "$K8S_BIN/kube-apiserver" kube-apiserver
need "$K8S_BIN/kube-controller-manager" kube-controller-manager
need "$K8S_BIN/kube-scheduler" kube-scheduler
need "$ETCD_BIN/etcd" etcd
need "$KWOK_BIN/kwok" kwok
need "$KWOK_BIN/kwokctl" kwokctl
need "$KSERVE_BIN/manager" "KServe controller (manager)"
command -v kubectl >/dev/null || die "kubectl missing: run make tools"
command -v openssl >/dev/null || die "openssl missing (Debian package openssl)"
mkdir -p "$STATE"

# Module sources for the upstream CRDs and configs, at the pinned versions (read-only cache).
moddir() {
    local dir
    dir=$(go mod download -json "$1@$2" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("Dir",""))') || true
    [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $1@$2 failed: cannot read its CRDs"
    printf '%s' "$dir"
}
KSERVE_SRC=$(moddir github.com/kserve/kserve "$KSERVE_CONTROLLER_VERSION")
PROMOP_SRC=$(moddir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")

t0=$SECONDS
# ---- control plane ------------------------------------------------------------------------
if "$KWOK_BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$NAME" && kubectl get --raw /readyz >/dev/null 2>&1; then
    log "cluster $NAME is running (kwokctl, $KWOK_WORKDIR)"
else
    "$KWOK_BIN/kwokctl" delete cluster --name "$NAME" >/dev/null 2>&1 || true
    log "creating cluster $NAME: kube-apiserver $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION"
    KWOK_KUBECTL_BINARY="$(command -v kubectl)" KWOK_KUBE_VERSION="$KUBERNETES_VERSION" \
    "$KWOK_BIN/kwokctl" create cluster --name "$NAME" --runtime binary \
        --kube-apiserver-binary "$K8S_BIN/kube-apiserver" \
        --kube-controller-manager-binary "$K8S_BIN/kube-controller-manager" \
        --kube-scheduler-binary "$K8S_BIN/kube-scheduler" \
        --etcd-binary "$ETCD_BIN/etcd" \
        --kwok-controller-binary "$KWOK_BIN/kwok" \
        --kube-authorization --kube-admission \
        --extra-args kube-controller-manager=enable-hostpath-provisioner=true \
        --kubeconfig "$KUBECONFIG_PATH" --wait 120s --timeout 5m >&2 \
        || die "kwokctl create cluster failed (logs: $KWOK_WORKDIR/clusters/$NAME/logs)"
fi
kubectl config use-context "kwok-$NAME" >/dev/null

nodes=$(kubectl get nodes -o name 2>/dev/null | wc -l)
if [ "$nodes" -lt 2 ]; then
    log "two fake nodes (kwok)"
    "$KWOK_BIN/kwokctl" scale node --name "$NAME" --replicas 2 >&2
fi
kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null

# A default StorageClass (as kind's local-path): PVCs bind to host-path volumes the
# controller-manager provisions and deletes, so StatefulSets and PVC-backed pods schedule.
kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

# ---- CRDs ---------------------------------------------------------------------------------
log "CRDs: KServe $KSERVE_CONTROLLER_VERSION (config/crd), prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
kubectl kustomize "$KSERVE_SRC/config/crd" | kubectl apply --server-side --force-conflicts -f - >/dev/null
for crd in podmonitors servicemonitors prometheusrules alertmanagerconfigs; do
    kubectl apply --server-side --force-conflicts \
        -f "$PROMOP_SRC/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" >/dev/null
done
# Established, then served: the KServe controller's REST mapper reads discovery once at start
# and exits ("no matches for kind InferenceService") if the group is not served yet. (A
# jsonpath over .status.conditions fails, with empty output, on a CRD that has no conditions
# yet, and so does `kubectl wait` at once: it is retried until it succeeds.)
established=""
for _ in $(seq 60); do
    kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null 2>"$STATE/crds.err" && { established=1; break; }
    sleep 2
done
[ -n "$established" ] || die "CRDs not established in 120s: $(head -n 2 "$STATE/crds.err")"
served=""
for _ in $(seq 60); do
    served=$(kubectl api-resources --api-group=serving.kserve.io -o name 2>/dev/null | grep -c '^inferenceservices\.' || true)
    [ "$served" = 1 ] && kubectl get inferenceservices -A >/dev/null 2>&1 && kubectl get podmonitors -A >/dev/null 2>&1 && break
    served=""
    sleep 1
done
[ -n "$served" ] || die "the API server does not serve serving.kserve.io/monitoring.coreos.com 60s after the CRDs were established"

# ---- kserve namespace, inferenceservice-config --------------------------------------------
kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: kserve
  labels:
    pod-security.kubernetes.io/enforce: restricted
EOF
# The namespace KFP would create (the chart puts the pipeline runner's ServiceAccount there).
kubectl create namespace kubeflow --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
# KServe's own ConfigMap, patched as make kind-up patches it (no Istio VirtualServices).
kubectl apply --server-side --force-conflicts -n kserve -f "$KSERVE_SRC/config/configmap/inferenceservice.yaml" >/dev/null
kubectl -n kserve patch configmap inferenceservice-config --type merge -p \
  "$(kubectl -n kserve get configmap inferenceservice-config -o jsonpath='{.data.ingress}' |
     "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["disableIstioVirtualHost"]=True; print(json.dumps({"data":{"ingress":json.dumps(d)}}))')" >/dev/null

# ---- KServe controller + webhooks ---------------------------------------------------------
PKI="$STATE/pki"
CERTS="$STATE/tmp/k8s-webhook-server/serving-certs"   # controller-runtime's default under $TMPDIR
if [ ! -s "$CERTS/tls.crt" ]; then
    log "webhook certificates (local CA, SAN 127.0.0.1)"
    mkdir -p "$PKI" "$CERTS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=churnops-local-webhook-ca" \
        -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kserve-webhook-server" \
        -keyout "$CERTS/tls.key" -out "$PKI/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$PKI/ext.cnf"
    openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 3650 -extfile "$PKI/ext.cnf" -out "$CERTS/tls.crt" 2>/dev/null
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
running() { [ -f "$STATE/kserve.pid" ] && kill -0 "$(cat "$STATE/kserve.pid")" 2>/dev/null; }
if running; then
    log "KServe controller running (pid $(cat "$STATE/kserve.pid"))"
else
    WEBHOOK_PORT=$(free_port); PROBE_PORT=$(free_port)
    echo "$WEBHOOK_PORT" > "$STATE/kserve.webhook-port"; echo "$PROBE_PORT" > "$STATE/kserve.probe-port"
    log "KServe controller $KSERVE_CONTROLLER_VERSION (webhooks on 127.0.0.1:$WEBHOOK_PORT, log $STATE/kserve.log)"
    # setsid: its own session, so make's exit does not end it; cluster-down stops it by pid.
    TMPDIR="$STATE/tmp" POD_NAMESPACE=kserve KUBECONFIG="$KUBECONFIG_PATH" setsid \
        "$KSERVE_BIN/manager" --webhook-port "$WEBHOOK_PORT" --metrics-addr 0 \
        --health-probe-addr "127.0.0.1:$PROBE_PORT" --leader-elect=false \
        > "$STATE/kserve.log" 2>&1 < /dev/null &
    echo $! > "$STATE/kserve.pid"
fi
WEBHOOK_PORT=$(cat "$STATE/kserve.webhook-port"); PROBE_PORT=$(cat "$STATE/kserve.probe-port")
for _ in $(seq 120); do
    curl -fsS "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null 2>&1 && break
    running || die "KServe controller exited: $(tail -n 3 "$STATE/kserve.log" | tr '\n' ' ')"
    sleep 1
done
curl -fsS "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null 2>&1 || die "KServe controller not ready after 120s (log $STATE/kserve.log)"

log "webhooks: KServe config/webhook, pointed at 127.0.0.1:$WEBHOOK_PORT"
"$PY" scripts/cluster/webhooks.py "$KSERVE_SRC/config/webhook/manifests.yaml" \
    "https://127.0.0.1:$WEBHOOK_PORT" "$PKI/ca.crt" | kubectl apply --server-side --force-conflicts -f - >/dev/null

# ClusterServingRuntimes (config/runtimes): through the validating webhook just registered.
for _ in 1 2 3 4 5; do
    kubectl kustomize "$KSERVE_SRC/config/runtimes" | kubectl apply --server-side --force-conflicts -f - >/dev/null 2>"$STATE/runtimes.err" && break
    sleep 2
done
[ ! -s "$STATE/runtimes.err" ] || die "KServe runtimes not accepted: $(head -n 2 "$STATE/runtimes.err")"

server=$(kubectl version -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
log "ready in $((SECONDS - t0))s: Kubernetes $server, $(kubectl get nodes --no-headers | wc -l) fake nodes"
log "export KUBECONFIG=$KUBECONFIG_PATH"
printf '{"ok": true, "kubeconfig": "%s", "server": "%s", "kserve_controller": "%s", "webhook": "https://127.0.0.1:%s"}\n' \
    "$KUBECONFIG_PATH" "$server" "$KSERVE_CONTROLLER_VERSION" "$WEBHOOK_PORT"
