"""Alembic is the only way the schema is made; it goes up and down on both databases."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from app.core.migrate import downgrade, upgrade
from migrations import include_name
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
            context = MigrationContext.configure(conn, opts={"include_name": include_name})
            diff = compare_metadata(context, Base.metadata)
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


def test_rows_of_every_revision_survive_the_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """0004 rebuilds the SQLite tables: columns added before it (display names, derivatives)
    keep their values, and from then on a deleted id is never handed out again."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = create_engine(url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, name, created_at, index_version) VALUES (1, 'al', :t, 0)"),
            {"t": now},
        )
        for cid in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO concepts (id, user_id, name, name_key, info, category, "
                    "display_name, created_at, updated_at) VALUES (:id, 1, :n, :n, 'i', NULL, "
                    "'Iron Man', :t, :t)"
                ),
                {"id": cid, "n": f"c{cid}", "t": now},
            )
        conn.execute(
            text(
                "INSERT INTO concept_images (id, concept_id, user_id, sha256, width, height, mime, "
                "blob_key, prompt_blob_key, prompt_width, prompt_height, prompt_max_pixels, "
                "thumb_blob_key, created_at) VALUES (1, 1, 1, 'ab', 4, 3, 'image/jpeg', 'a/b.jpg', "
                "'p/q.jpg', 2, 1, 100, 't/u.jpg', :t)"
            ),
            {"t": now},
        )
        conn.execute(text("DELETE FROM concepts WHERE id = 2"))
    engine.dispose()

    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT display_name FROM concepts")).scalar() == "Iron Man"
            derivatives = conn.execute(
                text(
                    "SELECT prompt_blob_key, prompt_max_pixels, thumb_blob_key FROM concept_images"
                )
            ).one()
            assert tuple(derivatives) == ("p/q.jpg", 100, "t/u.jpg")
            ids = []
            for name in ("new", "newer"):
                conn.execute(
                    text(
                        "INSERT INTO concepts (user_id, name, name_key, info, created_at, "
                        "updated_at) VALUES (1, :n, :n, '', :t, :t)"
                    ),
                    {"n": name, "t": now},
                )
                ids.append(conn.execute(text("SELECT max(id) FROM concepts")).scalar())
                conn.execute(text("DELETE FROM concepts WHERE name = :n"), {"n": name})
    finally:
        engine.dispose()
    # From the upgrade on, a deleted id is never handed out again (ids deleted before it were
    # not recorded by SQLite and may come back once).
    assert ids[1] == ids[0] + 1
