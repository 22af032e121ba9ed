#!/usr/bin/env bash
# A Docker Engine for building and running the churnops images. Idempotent:
#   - an engine already answers on DOCKER_HOST or the default socket -> use it, touch nothing;
#   - otherwise install Debian's docker.io if dockerd is missing, and start dockerd for the
#     project: data root under ~/.cache/churnops/docker (layers survive CI reruns), state
#     (pid file, log) under ~/.cache/churnops/docker-run, API on the default socket.
# Only an engine this script started is ever stopped (`--stop` checks the pid file).
#   usage: scripts/docker-engine.sh            ensure an engine; JSON {"docker_host", "started_by_churnops", ...}
#          scripts/docker-engine.sh --stop     stop the dockerd this script started (if any)
#          scripts/docker-engine.sh --status   JSON, starts nothing
#          scripts/docker-engine.sh --build-command
#                                              the BuildKit-capable `docker build` to use
#   env:   DOCKER (docker), CHURNOPS_DOCKER_ROOT (~/.cache/churnops/docker)
set -euo pipefail

DOCKER="${DOCKER:-docker}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/churnops"
DATA_ROOT="${CHURNOPS_DOCKER_ROOT:-$CACHE/docker}"
STATE="${DATA_ROOT%/}-run"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
# Short: containerd's and dockerd's sockets live here (unix socket paths are length-limited).
EXEC_ROOT=/run/churnops-docker
SOCKET=/var/run/docker.sock

log() { echo ">> docker-engine: $*" >&2; }
die() { echo "docker-engine: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

answers() { timeout 10 "$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null; }
own_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}
host() { echo "${DOCKER_HOST:-unix://$SOCKET}"; }
status_json() {
  local version="$1" own=false
  [ -n "$(own_pid || true)" ] && own=true
  printf '{"docker_host": "%s", "server_version": "%s", "started_by_churnops": %s, "data_root": "%s"}\n' \
    "$(host)" "$version" "$own" "$( [ "$own" = true ] && echo "$DATA_ROOT" || echo "")"
}

# `docker build` with BuildKit (the Dockerfiles use RUN --mount for the CA secret and the
# uv cache). A CLI >= 23 builds through the buildx plugin; without it, Debian's docker.io
# client (20.10) still carries BuildKit's client built in.
build_command() {
  if "$DOCKER" buildx version >/dev/null 2>&1; then echo "$DOCKER buildx build --load"; return; fi
  local cli
  for cli in "$DOCKER" /usr/bin/docker; do
    command -v "$cli" >/dev/null || continue
    major="$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)"
    if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then echo "env DOCKER_BUILDKIT=1 $cli build"; return; fi
  done
  die "no BuildKit-capable docker build: install the buildx plugin (Debian: docker.io ships a 20.10 client with it built in)"
}

case "${1:-}" in
  --build-command) build_command; exit 0 ;;
  --status) status_json "$(answers || true)"; exit 0 ;;
  --stop)
    pid="$(own_pid || true)"
    if [ -z "$pid" ]; then echo '{"docker_engine": "not started by churnops: left alone"}'; exit 0; fi
    log "stopping dockerd (pid $pid)"
    $SUDO kill -TERM "$pid"
    for _ in $(seq 1 60); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
    [ -d "/proc/$pid" ] && { log "dockerd did not stop in 30 s: SIGKILL"; $SUDO kill -KILL "$pid"; }
    $SUDO rm -f "$PIDFILE"
    echo '{"docker_engine": "stopped"}'
    exit 0 ;;
  "") ;;
  *) die "unknown option '$1' (use --stop, --status or --build-command)" ;;
esac

if version="$(answers)"; then status_json "$version"; exit 0; fi
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer (unset it to let churnops start its own engine)"
fi

if ! command -v dockerd >/dev/null; then
  log "installing Debian's docker.io (dockerd, containerd, runc)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends docker.io >/dev/null
fi
command -v "$DOCKER" >/dev/null || DOCKER=/usr/bin/docker

if [ -z "$(own_pid || true)" ]; then
  mkdir -p "$DATA_ROOT" "$STATE"
  log "starting dockerd (data root $DATA_ROOT, log $LOG)"
  # setsid + nohup: the engine outlives the make or pytest that started it, until --stop.
  $SUDO setsid nohup dockerd --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" -H "unix://$SOCKET" >"$LOG" 2>&1 </dev/null &
fi
export DOCKER_HOST="unix://$SOCKET"
for _ in $(seq 1 120); do
  if version="$(answers)"; then status_json "$version"; exit 0; fi
  if [ ! -e "$PIDFILE" ] && ! pgrep -x dockerd >/dev/null; then break; fi
  sleep 0.5
done
tail -n 15 "$LOG" >&2 || true
die "dockerd did not answer on $SOCKET within 60 s (log: $LOG)"
