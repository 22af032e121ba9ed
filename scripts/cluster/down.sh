#!/usr/bin/env bash
# Stop the local control plane (make cluster-down): the KServe controller by its pid, the
# kwokctl cluster, and .churnops/cluster/. Idempotent: nothing running is not an error.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
set -a; . manifests/versions.env; set +a
CACHE="${CHURNOPS_CACHE:-$HOME/.cache/churnops}"
NAME=${LOCAL_CLUSTER:-churnops}
STATE="$ROOT/.churnops/cluster"
export KWOK_WORKDIR="$STATE/kwok"
KWOKCTL="$CACHE/kwok-$KWOK_VERSION/bin/kwokctl"
log() { printf 'cluster-down: %s\n' "$*" >&2; }

stopped=()
if [ -f "$STATE/kserve.pid" ]; then
    pid=$(cat "$STATE/kserve.pid")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping the KServe controller (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        stopped+=('"kserve-controller"')
    fi
fi
if [ -x "$KWOKCTL" ] && [ -d "$KWOK_WORKDIR/clusters/$NAME" ]; then
    log "deleting cluster $NAME"
    "$KWOKCTL" delete cluster --name "$NAME" --kubeconfig "$STATE/kubeconfig" >&2 || true
    stopped+=('"control-plane"')
fi
rm -rf "$STATE"
printf '{"ok": true, "stopped": [%s]}\n' "$(IFS=,; echo "${stopped[*]:-}")"
