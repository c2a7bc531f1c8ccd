"""Block until the configured database accepts connections, or exit 1 with a clear message.

Run by prestart.sh before `alembic upgrade head`: Compose's `service_healthy` covers a fresh
stack, but not a database that restarts or sits on another host.
"""

from __future__ import annotations

import os
import sys
import time

from pydantic import ValidationError
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from app.core.settings import Settings

# psycopg's own connect timeout; without it one attempt can hang on a black-holed host.
CONNECT_TIMEOUT_S = 5


def wait_for_database(url: str, timeout_s: float, interval_s: float = 1.0) -> int:
    """Try `SELECT 1` until it succeeds; return the number of attempts, raise TimeoutError."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return 0
    shown = parsed.render_as_string(hide_password=True)
    connect_args = (
        {"connect_timeout": CONNECT_TIMEOUT_S} if "postgresql" in parsed.drivername else {}
    )
    engine = create_engine(parsed, connect_args=connect_args)
    deadline = time.monotonic() + timeout_s
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return attempt
            except OperationalError as error:
                reason = str(error.orig or error).strip().splitlines()[0]
                if time.monotonic() + interval_s > deadline:
                    raise TimeoutError(
                        f"database {shown} not reachable after {timeout_s:.0f} s "
                        f"({attempt} attempts): {reason}. Check REPIC_DATABASE_URL and that "
                        "the database is running; raise REPIC_DB_WAIT_S to wait longer."
                    ) from error
                print(f"waiting for database {shown}: {reason}", file=sys.stderr, flush=True)
                time.sleep(interval_s)
                interval_s = min(interval_s * 2, 5.0)
    finally:
        engine.dispose()


def main() -> None:
    timeout_s = float(os.environ.get("REPIC_DB_WAIT_S", "60"))
    try:
        settings = Settings()
    except ValidationError as error:
        # Refused before anything touches the database, e.g. a default secret in production.
        problems = "; ".join(str(item["msg"]) for item in error.errors())
        print(f"prestart: invalid settings: {problems}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    try:
        attempts = wait_for_database(settings.database_url, timeout_s)
    except TimeoutError as error:
        print(f"prestart: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    if attempts:
        print(f"prestart: database reachable after {attempts} attempt(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
