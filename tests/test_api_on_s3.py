"""The whole concepts and caption API suites again, with photos in a real S3-compatible server
(moto on loopback). The database is SQLite here (the storage backend is independent of it; the
suites run on PostgreSQL with local photos, and tests/test_replicas.py runs PostgreSQL with S3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.s3_fixtures import s3_server, s3_session_bucket, s3_storage  # noqa: F401 - fixtures
from tests.test_caption_api import *  # noqa: F403 - the suite, collected again here
from tests.test_concepts_api import *  # noqa: F403

pytestmark = pytest.mark.live


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


@pytest.fixture
def settings_overrides(s3_storage: dict[str, object]) -> dict[str, object]:  # noqa: F811
    return {"storage": s3_storage}
