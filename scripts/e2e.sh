#!/usr/bin/env bash
# End-to-end check on the kind cluster (after make kind-up images deploy):
#   1. submit the training pipeline to KFP and wait for MLflow alias `champion`;
#   2. send V1 and V2 inferences through the Knative ingress (Kourier on localhost:8081);
#   3. run a metric-gated canary rollout (Job) while traffic flows, and wait for its verdict;
#   4. check Prometheus has churnops_requests_total.
# Port-forwards are started here and always stopped on exit; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a; source manifests/versions.env; set +a
TOOLS=${TOOLS:-.tools}
export PATH="$PWD/$TOOLS/bin:$PATH"
NAMESPACE=${NAMESPACE:-churnops}
RELEASE=${RELEASE:-churnops}
CHURNOPS=${CHURNOPS:-.venv/bin/churnops}
INGRESS="http://localhost:${KIND_INGRESS_PORT}"
HOST_HEADER="Host: churn.${NAMESPACE}.127.0.0.1.sslip.io"
log() { printf '\n>> %s\n' "$*" >&2; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
forward() {  # namespace svc local:remote
  kubectl -n "$1" port-forward "svc/$2" "$3" >/dev/null 2>&1 & pids+=($!)
}
forward kubeflow ml-pipeline 8888:8888
forward "$NAMESPACE" "${RELEASE}-mlflow" 5000:5000
forward "${KPS_NAMESPACE}" "${KPS_RELEASE}-prometheus" 9090:9090
sleep 5

# MLflow's basic auth (mlflow.auth.enabled, the default) answers every API call without
# credentials with 401: read the registry as the chart's read-only predictor identity.
if kubectl -n "$NAMESPACE" get secret "${RELEASE}-mlflow-predictor" >/dev/null 2>&1; then
  secret_value() {  # key of Secret <release>-mlflow-predictor, decoded
    kubectl -n "$NAMESPACE" get secret "${RELEASE}-mlflow-predictor" -o "jsonpath={.data.$1}" | base64 -d
  }
  MLFLOW_TRACKING_USERNAME=$(secret_value MLFLOW_TRACKING_USERNAME)
  MLFLOW_TRACKING_PASSWORD=$(secret_value MLFLOW_TRACKING_PASSWORD)
  export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
fi

log "1. submit the training pipeline"
"$CHURNOPS" pipeline submit --host http://localhost:8888
log "waiting (up to 40 min) for alias champion in MLflow"
champion=""
for _ in $(seq 1 240); do
  champion=$("$CHURNOPS" registry aliases --model-name churn --tracking-uri http://localhost:5000 2>/dev/null |
             tail -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin).get("aliases",{}).get("champion",""))' || true)
  [[ -n "$champion" ]] && break
  sleep 10
done
[[ -n "$champion" ]] || { echo "no champion after 40 min" >&2; exit 1; }
log "champion is version $champion"

kubectl -n "$NAMESPACE" wait --for=condition=Ready inferenceservice/churn --timeout=600s

log "2. inferences through the ingress"
record='{"customerID":"e2e-1","gender":"Female","SeniorCitizen":0,"Partner":"Yes","Dependents":"No","tenure":5,"PhoneService":"Yes","MultipleLines":"No","InternetService":"Fiber optic","OnlineSecurity":"No","OnlineBackup":"No","DeviceProtection":"No","TechSupport":"No","StreamingTV":"Yes","StreamingMovies":"Yes","Contract":"Month-to-month","PaperlessBilling":"Yes","PaymentMethod":"Electronic check","MonthlyCharges":95.5,"TotalCharges":"477.5"}'
v1=$(curl -fsS -H "$HOST_HEADER" -H 'Content-Type: application/json' \
       -d "{\"instances\":[$record]}" "$INGRESS/v1/models/churn:predict")
echo "$v1" | python3 -c 'import json,sys; p=json.load(sys.stdin)["predictions"][0]; assert 0<=p["churn_probability"]<=1, p; print("V1 ok", p)'
v2_body=$(python3 - "$record" <<'PY'
import json, sys
rec = json.loads(sys.argv[1])
def tensor(k, v):
    if isinstance(v, str):
        return {"name": k, "shape": [1], "datatype": "BYTES", "data": [v]}
    if isinstance(v, int):
        return {"name": k, "shape": [1], "datatype": "INT64", "data": [v]}
    return {"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
rec["TotalCharges"] = float(rec["TotalCharges"])
print(json.dumps({"inputs": [tensor(k, v) for k, v in rec.items()]}))
PY
)
curl -fsS -H "$HOST_HEADER" -H 'Content-Type: application/json' -d "$v2_body" \
  "$INGRESS/v2/models/churn/infer" | python3 -c 'import json,sys; o={x["name"] for x in json.load(sys.stdin)["outputs"]}; assert {"churn_probability","churn"}<=o, o; print("V2 ok")'

log "3. canary rollout of version $champion with traffic"
( end=$((SECONDS + 900)); while (( SECONDS < end )); do
    curl -fsS -o /dev/null -H "$HOST_HEADER" -H 'Content-Type: application/json' \
      -d "{\"instances\":[$record]}" "$INGRESS/v1/models/churn:predict" || true
    sleep 0.2
  done ) & pids+=($!)
helm upgrade "$RELEASE" charts/churnops --namespace "$NAMESPACE" --server-side=true --reuse-values \
  --set rollout.enabled=true --set "rollout.version=$champion" --wait=legacy --timeout 5m
kubectl -n "$NAMESPACE" wait --for=condition=Complete "job/${RELEASE}-rollout-v${champion}" --timeout=900s
kubectl -n "$NAMESPACE" logs "job/${RELEASE}-rollout-v${champion}" | tail -n1
helm upgrade "$RELEASE" charts/churnops --namespace "$NAMESPACE" --server-side=true --reuse-values --set rollout.enabled=false --wait=legacy

log "4. Prometheus has churnops_requests_total"
n=0
for _ in $(seq 1 30); do
  n=$(curl -fsS "http://localhost:9090/api/v1/query" --data-urlencode 'query=churnops_requests_total' |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))')
  (( n > 0 )) && break
  sleep 10
done
(( n > 0 )) || { echo "Prometheus has no churnops_requests_total series" >&2; exit 1; }
log "e2e passed: champion v$champion served, canary analysed, $n churnops_requests_total series"
