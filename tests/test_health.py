"""Liveness, readiness, and what a dead dependency looks like to a caller."""

from __future__ import annotations

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI

from app.core.migrate import alembic_config
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create


async def test_healthz(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


async def test_readyz_reports_the_database(anon: httpx.AsyncClient) -> None:
    resp = await anon.get("/readyz", headers=admin_headers())
    body = resp.json()
    assert body["components"]["database"]["ready"] is True
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None and head in body["components"]["database"]["detail"]


async def test_readyz_when_database_is_gone(app: FastAPI, anon: httpx.AsyncClient) -> None:
    from sqlalchemy import create_engine

    app.state.runtime.engine = create_engine("sqlite:////nonexistent-dir/x.db")
    resp = await anon.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["components"]["database"]["ready"] is False


async def test_database_down_is_503_and_changes_nothing(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.orm import sessionmaker

    from store.db import make_engine

    runtime = app.state.runtime
    good = runtime.sessions
    runtime.sessions = sessionmaker(bind=make_engine("sqlite:////nonexistent-dir/x.db"))
    resp = await alice.client.get("/concepts")
    assert_problem(resp, 503, "database-unavailable")
    assert resp.headers["retry-after"]
    runtime.sessions = good
    assert (await alice.client.get("/concepts")).json()["count"] == 0


async def test_disk_failure_is_503_and_stores_nothing(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    body = assert_problem(await create(alice, "bo", images.pattern(1)), 503, "storage-unavailable")
    assert "disk" in str(body["detail"])
    monkeypatch.undo()
    assert (await alice.client.get("/concepts")).json()["count"] == 0
    assert (await create(alice, "bo", images.pattern(1))).status_code == 201
