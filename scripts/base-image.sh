#!/usr/bin/env bash
# The base image the Dockerfiles build FROM (their `ARG PYTHON_IMAGE`), for machines without
# an image registry. Idempotent:
#   1. the image is already in the engine                     -> nothing to do;
#   2. `docker pull` works (a registry is reachable)          -> the official image, pulled;
#   3. otherwise (the offline path)                            -> a stand-in: Debian bookworm
#      from debootstrap (Debian's packages) + Debian's python3, python3-venv, python3-dev,
#      `docker import`ed under the same tag, so the Dockerfiles build unchanged.
# The stand-in carries Debian's own ca-certificates, never this machine's CA bundle.
# Prints one JSON line on stdout; progress on stderr.
#   usage: scripts/base-image.sh [IMAGE]     (default: the Dockerfiles' PYTHON_IMAGE)
#   env:   DOCKER (docker), DEBIAN_MIRROR (http://deb.debian.org/debian),
#          CHURNOPS_BASE_IMAGE=auto|pull|debootstrap (auto: pull, else debootstrap)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
MODE="${CHURNOPS_BASE_IMAGE:-auto}"
default_image() { sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/serving/Dockerfile" | head -n1; }
IMAGE="${1:-$(default_image)}"

log() { echo ">> base-image: $*" >&2; }
die() { echo "base-image: $*" >&2; exit 1; }
json() { printf '{"base_image": "%s", "source": "%s"}\n' "$IMAGE" "$1"; }
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

[ -n "$IMAGE" ] || die "no PYTHON_IMAGE default in serving/Dockerfile"
for f in "$ROOT/components/Dockerfile"; do
  other="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$f" | head -n1)"
  [ "$other" = "$(default_image)" ] || die "$f builds FROM $other, serving/Dockerfile FROM $(default_image): keep them equal"
done
$DOCKER version >/dev/null 2>&1 || die "no Docker engine answers (run: make docker-engine)"

if $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then
  src="$($DOCKER image inspect -f '{{index .Config.Labels "org.churnops.base"}}' "$IMAGE" 2>/dev/null || true)"
  json "${src:-present}"
  exit 0
fi

if [ "$MODE" != debootstrap ]; then
  log "pulling $IMAGE"
  if $DOCKER pull -q "$IMAGE" >/dev/null 2>&1; then json pulled; exit 0; fi
  [ "$MODE" = pull ] && die "cannot pull $IMAGE (CHURNOPS_BASE_IMAGE=pull)"
  log "no registry answers: building a stand-in from debootstrap ($SUITE, $MIRROR)"
fi

if ! command -v debootstrap >/dev/null; then
  log "installing Debian's debootstrap"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends debootstrap >/dev/null
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/churnops-base.XXXXXX")"
trap '$SUDO rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
# python-is-python3: the official images answer to `python`, and the Dockerfiles call it.
PACKAGES=python3,python3-venv,python3-dev,python-is-python3,ca-certificates,netbase,tzdata
log "debootstrap --variant=minbase $SUITE (a few minutes on a cold cache)"
# Downloaded .debs are kept (outside the clone) so a rerun does not fetch them again.
DEBS="${XDG_CACHE_HOME:-$HOME/.cache}/churnops/debootstrap-debs"
mkdir -p "$DEBS"
$SUDO debootstrap --variant=minbase --cache-dir="$DEBS" --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
  > "$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

# What the official slim images also leave out: package lists, docs, man pages, caches.
# The build host's resolv.conf/hostname must not ship either (the engine supplies them).
$SUDO chroot "$ROOTFS" apt-get clean
$SUDO rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache \
  "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/lib/x86_64-linux-gnu/libc.a "$ROOTFS"/usr/lib/x86_64-linux-gnu/libm-*.a \
  "$ROOTFS"/usr/lib/python3*/config-*/*.a
# The big static libraries go too (extensions build against the headers and shared libs;
# libc_nonshared.a stays: gcc links every shared object with it).
$SUDO sh -c ": > '$ROOTFS/etc/resolv.conf'; : > '$ROOTFS/etc/hostname'"
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
  "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" | $SUDO tee "$ROOTFS/etc/apt/sources.list" >/dev/null

log "docker import -> $IMAGE"
$SUDO tar -C "$ROOTFS" --numeric-owner -c . | $DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'LABEL org.churnops.base=debootstrap' \
  --change "LABEL org.churnops.base.suite=$SUITE" \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
$DOCKER run --rm --network none "$IMAGE" python -c 'import sys, venv, sysconfig; assert sys.version_info >= (3, 11)' \
  || die "the stand-in $IMAGE has no usable python"
json debootstrap
