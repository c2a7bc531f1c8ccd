#!/bin/sh
# Container entrypoint. With arguments, run them (e.g. `repic ...`) and nothing else.
# Without: wait for the database, apply migrations, then replace this shell with uvicorn so it
# receives SIGTERM directly and drains requests for REPIC_GRACE_S seconds.
set -eu

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

# alembic.ini and the migrations live next to this directory.
cd "$(dirname "$0")/.."
python docker/wait_for_db.py

if [ "${REPIC_RUN_MIGRATIONS:-1}" = "1" ]; then
    echo "prestart: alembic upgrade head" >&2
    alembic upgrade head
fi

# uvicorn's access log is off: the app writes its own, keyed by route template and request id.
# No `server: uvicorn` banner: it only helps whoever looks for a server's known weaknesses.
exec uvicorn app.main:create_app --factory \
    --host 0.0.0.0 --port 8000 \
    --no-server-header \
    --workers "${REPIC_UVICORN_WORKERS:-1}" \
    --timeout-graceful-shutdown "${REPIC_GRACE_S:-30}" \
    --proxy-headers \
    --no-access-log
