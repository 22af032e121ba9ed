#!/usr/bin/env bash
# Submit the churnops training pipeline to the cluster's KFP (port-forwarded to localhost:8888).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS:-.tools}
export PATH="$PWD/$TOOLS/bin:$PATH"
CHURNOPS=${CHURNOPS:-.venv/bin/churnops}
kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888 >/dev/null 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true' EXIT
sleep 3
"$CHURNOPS" pipeline submit --host http://localhost:8888 "$@"
