"""The whole concepts and caption API suites again, with photos in a real S3-compatible server
(moto on loopback) and the database on PostgreSQL, as a multi-replica deployment runs them."""

from __future__ import annotations

import pytest

from tests.s3_fixtures import S3Server, make_bucket, s3_server  # noqa: F401 - fixture
from tests.test_caption_api import *  # noqa: F403 - the suite, collected again here
from tests.test_concepts_api import *  # noqa: F403


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def settings_overrides(s3_server: S3Server) -> dict[str, object]:  # noqa: F811
    return {"storage": s3_server.storage_settings(make_bucket(s3_server))}
