#!/usr/bin/env bash
# Builds the pinned control-plane binaries from the Go module proxy (make cluster-tools).
#
#   scripts/cluster/build.sh [component...]     components: kubernetes etcd kwok kserve (default: all)
#
# Each component lands in ${CHURNOPS_CACHE:-~/.cache/churnops}/<component>-<version>/bin and is
# built once: a rerun finds the binaries (and a .built stamp naming the wrapper's go.sum) and
# returns in milliseconds. Versions come from manifests/versions.env; the wrapper modules
# (go.mod/go.sum pinning the whole dependency graph) live beside this script.
# Progress goes to stderr; the last stdout line is JSON naming each component's bin directory.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/scripts/cluster"
# shellcheck disable=SC1091
set -a; . "$ROOT/manifests/versions.env"; set +a
CACHE="${CHURNOPS_CACHE:-$HOME/.cache/churnops}"
export GOFLAGS="-mod=mod -buildvcs=false -trimpath"
export CGO_ENABLED=0
# Two shared cores: one compile job at a time keeps the peak memory of the kube-apiserver link
# (the largest) near 3 GiB instead of doubling it.
export GOMAXPROCS="${CLUSTER_BUILD_PROCS:-2}"

log() { printf 'cluster-tools: %s\n' "$*" >&2; }
die() { printf 'cluster-tools: %s\n' "$*" >&2; printf '{"ok": false, "error": "%s"}\n' "$*"; exit 1; }

command -v go >/dev/null || die "go not found: the cluster binaries are built from source with Go >= 1.25"

# stamp FILE... : a hash of what decides the binaries (wrapper go.mod/go.sum, flags) for .built
stamp() { { cat "$@"; printf '%s\n' "${STAMP_EXTRA:-}"; } | sha256sum | cut -c1-16; }

fresh() {  # fresh DIR STAMP BIN...
    local dir=$1 want=$2; shift 2
    [ -f "$dir/.built" ] && [ "$(cat "$dir/.built")" = "$want" ] || return 1
    local b; for b in "$@"; do [ -x "$dir/bin/$b" ] || return 1; done
}

# binname PKG: the file go build -o DIR/ writes for a main package (a /vN suffix is dropped)
binname() { local p=$1; [[ $(basename "$p") =~ ^v[0-9]+$ ]] && p=$(dirname "$p"); basename "$p"; }

# wrapper_build NAME VERSION LDFLAGS PKG... : go build the packages from scripts/cluster/NAME's
# module into the cache; RENAME="from:to" renames one binary afterwards.
wrapper_build() {
    local name=$1 version=$2 ldflags=$3; shift 3
    local dir="$CACHE/$name-$version" src="$HERE/$name"
    local want; want=$(STAMP_EXTRA="$ldflags" stamp "$src/go.mod" "$src/go.sum")
    local bins=(); local p; for p in "$@"; do bins+=("$(binname "$p")"); done
    if [ -n "${RENAME:-}" ]; then bins=("${bins[@]/#${RENAME%%:*}/${RENAME##*:}}"); fi
    if fresh "$dir" "$want" "${bins[@]}"; then log "$name $version: cached in $dir/bin"; return 0; fi
    mkdir -p "$dir/bin"
    log "$name $version: building ${bins[*]} (first time: long; nice -n 10)"
    local t0=$SECONDS
    ( cd "$src" && nice -n 10 go build -ldflags "$ldflags" -o "$dir/bin/" "$@" ) >&2 \
        || die "$name $version: go build failed (see above)"
    if [ -n "${RENAME:-}" ]; then mv -f "$dir/bin/${RENAME%%:*}" "$dir/bin/${RENAME##*:}"; fi
    echo "$want" > "$dir/.built"
    log "$name $version: built in $((SECONDS - t0))s"
}

build_kubernetes() {
    local v=$KUBERNETES_VERSION major minor
    major=${v#v}; major=${major%%.*}; minor=${v#v*.}; minor=${minor%%.*}
    local x="" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    wrapper_build kubernetes "$v" "-s -w$x" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
}

build_etcd() {
    RENAME=server:etcd wrapper_build etcd "$ETCD_VERSION" "-s -w" go.etcd.io/etcd/server/v3
}

build_kwok() {
    local v=$KWOK_VERSION dir="$CACHE/kwok-$KWOK_VERSION"
    local want; want=$(STAMP_EXTRA="$v" stamp /dev/null)
    if fresh "$dir" "$want" kwok kwokctl; then log "kwok $v: cached in $dir/bin"; return 0; fi
    mkdir -p "$dir/bin"
    log "kwok $v: building kwok, kwokctl"
    local t0=$SECONDS
    GOBIN="$dir/bin" nice -n 10 go install -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" \
        "sigs.k8s.io/kwok/cmd/kwok@$v" "sigs.k8s.io/kwok/cmd/kwokctl@$v" >&2 \
        || die "kwok $v: go install failed (see above)"
    echo "$want" > "$dir/.built"
    log "kwok $v: built in $((SECONDS - t0))s"
}

build_kserve() {
    wrapper_build kserve "$KSERVE_CONTROLLER_VERSION" "-s -w" github.com/kserve/kserve/cmd/manager
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kubernetes etcd kwok kserve)
for c in "${components[@]}"; do
    case $c in
        kubernetes|etcd|kwok|kserve) "build_$c" ;;
        *) die "unknown component '$c' (kubernetes, etcd, kwok, kserve)" ;;
    esac
done
printf '{"ok": true, "cache": "%s", "components": [%s]}\n' "$CACHE" \
    "$(printf '"%s",' "${components[@]}" | sed 's/,$//')"
