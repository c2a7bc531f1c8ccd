"""Shared fixtures: a fresh database per test on SQLite and on a real PostgreSQL, the app, and
clients with API keys. PostgreSQL comes from `make test` (REPIC_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from app.main import create_app
from app.settings import Settings
from model.tiny.clip import TinyClip, build_tiny_clip
from tests.db_templates import MigratedTemplates

# Plugins, not imports: a session fixture imported into several modules starts once per module.
pytest_plugins = ["tests.qwen_fixtures", "tests.vllm_fixtures"]

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def postgres_base_url() -> str:
    url = os.environ.get("REPIC_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "REPIC_TEST_POSTGRES_URL is not set: run the suite with `make test`, which starts "
            "PostgreSQL (tests/pg/start.sh) and sets it."
        )
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty schema of the test database, dropped afterwards."""
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'repic.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Tests override this to change settings of the app under test."""
    return {}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> TinyClip:
    """A tiny random open_clip model, loaded through the real `pretrained=<file>` path."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    settings_overrides: dict[str, object],
    tiny_clip: TinyClip,
    tiny_qwen_dir: Path,
) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "admin_token": ADMIN_TOKEN,
        "workers": 2,
        "log_format": "inherit",
        "preload_models": False,
        "embedder": {
            "model": str(tiny_clip.config_path),
            "pretrained": str(tiny_clip.checkpoint_path),
        },
        "vlm": {"backend": "transformers", "model": str(tiny_qwen_dir), "max_tokens": 8},
    }
    values.update(settings_overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> MigratedTemplates:
    """Migrations run once per session; each test's database is a copy of the result."""
    return MigratedTemplates(tmp_path_factory.mktemp("db-templates"))


@pytest.fixture
async def app(settings: Settings, migrated_templates: MigratedTemplates) -> AsyncIterator[FastAPI]:
    migrated_templates.migrate(settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@dataclass
class UserClient:
    name: str
    key: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def _user(anon: httpx.AsyncClient, name: str) -> UserClient:
    resp = await anon.post(
        "/admin/users", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert resp.status_code == 201, resp.text
    key = resp.json()["key"]
    client = httpx.AsyncClient(
        transport=anon._transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )
    return UserClient(name=name, key=key, client=client)


@pytest.fixture
async def alice(anon: httpx.AsyncClient) -> AsyncIterator[UserClient]:
    user = await _user(anon, "alice")
    yield user
    await user.client.aclose()


@pytest.fixture
async def bob(anon: httpx.AsyncClient) -> AsyncIterator[UserClient]:
    user = await _user(anon, "bob")
    yield user
    await user.client.aclose()


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for `pytest -n N --dist loadgroup`: a module's tests stay on one worker (its
    module-scoped servers start once), and every test that runs a vLLM server shares one worker,
    so the servers (about 4 GiB each) never overlap across workers."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_vllm = "vllm_server" in fixtures or item.get_closest_marker("vllm") is not None
        group = "vllm" if uses_vllm else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
