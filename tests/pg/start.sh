#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 cluster (installing it when absent) and make sure the test
# role and database exist. With --print-url, only print the SQLAlchemy URL of that database.
set -euo pipefail

ROLE=repic_test
PASSWORD=repic_test
DB=repic_test
PORT=${REPIC_TEST_PG_PORT:-5432}
URL="postgresql+psycopg://${ROLE}:${PASSWORD}@127.0.0.1:${PORT}/${DB}"

if [[ "${1:-}" == "--print-url" ]]; then
  echo "$URL"
  exit 0
fi

as_postgres() {
  if [[ "$(id -un)" == "postgres" ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not installed; installing it from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

VERSION=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
CLUSTER=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
if [[ -z "$VERSION" ]]; then
  VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  CLUSTER=main
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT"
fi

if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep online >/dev/null; then
  pg_ctlcluster "$VERSION" "$CLUSTER" start
fi

for _ in $(seq 1 30); do
  as_postgres pg_isready -q -p "$PORT" && break
  sleep 1
done
as_postgres pg_isready -p "$PORT"

as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${ROLE}') THEN
    CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}' CREATEDB;
  END IF;
END \$\$;
SQL
if ! as_postgres psql -p "$PORT" -qtA -c "SELECT 1 FROM pg_database WHERE datname='${DB}'" | grep 1 >/dev/null; then
  as_postgres createdb -p "$PORT" -O "$ROLE" "$DB"
fi
echo "PostgreSQL ${VERSION}/${CLUSTER} is up; tests use ${DB} as ${ROLE}"
