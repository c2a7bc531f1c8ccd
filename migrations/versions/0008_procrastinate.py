"""procrastinate's tables and functions (the caption-job queue on PostgreSQL)

The schema is the one the pinned procrastinate release ships, applied in this migration's
transaction, so `repic db upgrade` is the only command operators run. When the pin moves, a new
migration applies the SQL files procrastinate lists between the two releases
(`procrastinate.schema.SchemaManager.get_migrations_path()`). SQLite has no queue tables: the
embedded queue is the job tables themselves.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)
_TYPES = (
    "procrastinate_job_to_defer_v1",
    "procrastinate_job_event_type",
    "procrastinate_job_status",
)
# Every procrastinate function of the current schema, whatever release created it.
_DROP_FUNCTIONS = r"""
DO $$
DECLARE fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE 'DROP FUNCTION ' || fn || ' CASCADE';
    END LOOP;
END $$;
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # The raw driver connection: the script has many statements and literal `%` signs, which
    # psycopg sends untouched when no parameters are given.
    bind.connection.dbapi_connection.execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(_DROP_FUNCTIONS)
    op.execute(f"DROP TABLE IF EXISTS {', '.join(_TABLES)} CASCADE")
    op.execute(f"DROP TYPE IF EXISTS {', '.join(_TYPES)} CASCADE")
