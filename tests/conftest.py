"""Shared fixtures: a fresh database per test on SQLite and on a real PostgreSQL, the app, and
clients with API keys. PostgreSQL comes from `make test` (REPIC_TEST_POSTGRES_URL)."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from app.core.settings import Settings
from app.main import create_app
from model.tiny.clip import TinyClip, build_tiny_clip
from tests.helpers.api import ADMIN_TOKEN, UserClient, new_user
from tests.helpers.db_templates import MigratedTemplates

# Plugins, not imports: a session fixture imported into several modules starts once per module.
pytest_plugins = [
    "tests.helpers.qwen",
    "tests.helpers.vllm",
    "tests.helpers.cli",
    "tests.helpers.api",
    "tests.helpers.s3",
]


def postgres_base_url() -> str:
    """The test cluster's URL. Without one, a plain local `pytest` skips the PostgreSQL cases;
    under `make test` (REPIC_TEST_REQUIRE_POSTGRES=1) a missing URL fails them instead."""
    url = os.environ.get("REPIC_TEST_POSTGRES_URL")
    if not url:
        hint = (
            "REPIC_TEST_POSTGRES_URL is not set: run the suite with `make test` (or `make "
            "test-fast`), which starts PostgreSQL (tests/pg/start.sh) and sets it."
        )
        if os.environ.get("REPIC_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(hint)
        pytest.skip(hint)
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
def blob_store() -> str:
    """Where the app under test keeps photos: ``local`` files, or ``s3`` (moto on loopback) for
    the tests of modules marked ``also_on_s3``, which run once more that way."""
    return "local"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("also_on_s3") and "settings" in metafunc.fixturenames:
        metafunc.parametrize("blob_store", ["local", pytest.param("s3", marks=pytest.mark.live)])


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    settings_overrides: dict[str, object],
    tiny_clip: TinyClip,
    tiny_qwen_dir: Path,
    blob_store: str,
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
    if blob_store == "s3":
        values["storage"] = request.getfixturevalue("s3_storage")
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


@pytest.fixture
async def alice(anon: httpx.AsyncClient) -> AsyncIterator[UserClient]:
    user = await new_user(anon, "alice")
    yield user
    await user.client.aclose()


@pytest.fixture
async def bob(anon: httpx.AsyncClient) -> AsyncIterator[UserClient]:
    user = await new_user(anon, "bob")
    yield user
    await user.client.aclose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the S3 runs on PostgreSQL, and run the tests marked ``stops_vllm`` last (they
    stop a session's vLLM server), in their given order.

    The S3 runs of ``also_on_s3`` modules use SQLite alone: the blob store is independent of the
    database, and tests/test_replicas.py covers PostgreSQL with S3."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("blob_store") == "s3" and params.get("database_url") == "postgres":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    items.sort(key=_stop_order)  # stable: the rest keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n N --dist loadgroup` (what `make test` runs): a module's tests stay on one
    worker (its module-scoped servers start once), and every module that uses vLLM shares one
    worker, so its session servers (about 4 GiB each) start once and never overlap with another
    worker's. xdist's own loadgroup cannot do this under pytest 9: it tags each test's node id
    with its group, which pytest 9 no longer lets a plugin change. The controller does not
    collect, so it tells a vLLM module by its source (the ``vllm`` marker or the server fixture).
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleOrVLLMScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "vllm" if _uses_vllm(module) else module

    return ModuleOrVLLMScheduling(config, log)


@functools.cache
def _uses_vllm(module: str) -> bool:
    source = (Path(__file__).resolve().parent.parent / module).read_text(encoding="utf-8")
    return "pytest.mark.vllm" in source or "vllm_server" in source


def _stop_order(item: pytest.Item) -> tuple[int, int]:
    marker = item.get_closest_marker("stops_vllm")
    return (0, 0) if marker is None else (1, int(marker.kwargs.get("order", 0)))
