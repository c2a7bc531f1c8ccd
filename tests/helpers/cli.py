"""The `repic` command line in-process, on the test's database with the tiny models."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.settings import Settings

runner = CliRunner()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings as REPIC_* variables, migrated, with the user `alice`."""
    monkeypatch.setenv("REPIC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REPIC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REPIC_EMBEDDER__MODEL", settings.embedder.model)
    monkeypatch.setenv("REPIC_EMBEDDER__PRETRAINED", settings.embedder.pretrained)
    monkeypatch.setenv("REPIC_VLM__MODEL", settings.vlm.model)
    monkeypatch.setenv("REPIC_VLM__MAX_TOKENS", "8")
    monkeypatch.setenv("REPIC_RETRIEVAL__MIN_SCORE", "-1")
    monkeypatch.setenv("REPIC_LOG_FORMAT", "inherit")
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["users", "create", "alice"]).exit_code == 0
    return settings


def concept_rows(settings: Settings) -> list[tuple[str, int]]:
    """(name, number of photos) of every concept in the database, by name."""
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.name, COUNT(i.id) FROM concepts c JOIN concept_images i "
                "ON i.concept_id = c.id GROUP BY c.name ORDER BY c.name"
            )
        ).all()
    engine.dispose()
    return [(r[0], int(r[1])) for r in rows]
