"""Alembic is the only way the schema is made; it goes up and down on both databases."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from app.migrate import downgrade, upgrade
from store.models import Base


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_model_table_and_downgrade_removes_them(database_url: str) -> None:
    upgrade(database_url)
    assert set(Base.metadata.tables) <= tables(database_url)
    downgrade(database_url, "base")
    assert tables(database_url) <= {"alembic_version"}
    upgrade(database_url)  # and up again
    assert set(Base.metadata.tables) <= tables(database_url)


def test_schema_matches_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], "models changed without a migration: run `alembic revision --autogenerate`"


def test_app_does_not_create_tables_itself(settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import build_runtime

    runtime = build_runtime(settings)
    try:
        assert tables(settings.database_url) <= {"alembic_version"}
    finally:
        runtime.engine.dispose()
