#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1:5432 for MLflow's backend store in the integration tests.
# Idempotent: installs Debian's postgresql if missing, starts the cluster if down, and makes
# the role + database the tests use. Prints the connection URL as its last line of stdout.
#   usage: scripts/postgres.sh            (start)
#          scripts/postgres.sh --stop     (stop the cluster it started)
set -euo pipefail

PG_ROLE="${CHURNOPS_PG_ROLE:-churnops}"
PG_PASSWORD="${CHURNOPS_PG_PASSWORD:-churnops}"
PG_DB="${CHURNOPS_PG_DB:-test}"
PG_PORT="${CHURNOPS_PG_PORT:-5432}"

log() { echo ">> postgres: $*" >&2; }
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing Debian's postgresql"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >/dev/null
fi

# The first cluster Debian made (e.g. "15 main"); make one if there is none.
read -r VERSION CLUSTER _ < <(pg_lsclusters -h | head -n1) || true
if [ -z "${VERSION:-}" ]; then
  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"; CLUSTER=main
  log "creating cluster $VERSION/$CLUSTER"
  $SUDO pg_createcluster "$VERSION" "$CLUSTER" -p "$PG_PORT" >/dev/null
fi

if [ "${1:-}" = "--stop" ]; then
  $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" stop 2>/dev/null || true
  echo '{"postgres": "stopped"}'
  exit 0
fi

STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
if [ "$STATUS" != "online" ]; then
  log "starting cluster $VERSION/$CLUSTER on 127.0.0.1:$PG_PORT"
  $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" start -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT"
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "not accepting connections on 127.0.0.1:$PG_PORT"; exit 1; }

# The tests create and drop one database per session: the role needs CREATEDB.
as_postgres psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE "$PG_ROLE" LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL
if ! as_postgres psql -p "$PG_PORT" -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
  as_postgres createdb -p "$PG_PORT" -O "$PG_ROLE" "$PG_DB"
fi
echo "{\"postgres\": \"postgresql://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB\"}"
