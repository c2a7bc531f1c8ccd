"""API keys: bearer and X-API-Key, unknown and revoked keys, the admin API and the CLI."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.settings import Settings
from tests.helpers.api import ADMIN_TOKEN, UserClient, admin_headers, assert_problem


async def test_missing_key_is_401(anon: httpx.AsyncClient) -> None:
    body = assert_problem(await anon.get("/concepts"), 401, "unauthorized")
    assert "Authorization: Bearer" in str(body["detail"])


async def test_wrong_key_is_401(anon: httpx.AsyncClient) -> None:
    for key in ("garbage", "rpk_00000000_notarealsecret"):
        resp = await anon.get("/concepts", headers={"Authorization": f"Bearer {key}"})
        assert_problem(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_x_api_key_header_works(anon: httpx.AsyncClient, alice: UserClient) -> None:
    resp = await anon.get("/concepts", headers={"X-API-Key": alice.key})
    assert resp.status_code == 200


async def test_several_keys_and_revocation(anon: httpx.AsyncClient, alice: UserClient) -> None:
    second = await anon.post("/admin/users/alice/keys", headers=admin_headers())
    assert second.status_code == 201
    key2 = second.json()["key"]
    assert key2 != alice.key
    assert (await anon.get("/concepts", headers={"X-API-Key": key2})).status_code == 200
    revoked = await anon.delete(f"/admin/keys/{second.json()['prefix']}", headers=admin_headers())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_problem(await anon.get("/concepts", headers={"X-API-Key": key2}), 401, "unauthorized")
    assert (await alice.client.get("/concepts")).status_code == 200
    keys = (await anon.get("/admin/users/alice/keys", headers=admin_headers())).json()
    assert keys["count"] == 2 and all("key_hash" not in k for k in keys["data"])


async def test_keys_are_stored_only_as_hashes(alice: UserClient, app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with app.state.runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT prefix, key_hash FROM api_keys")).all()
    assert rows and all(alice.key not in (p + h) for p, h in rows)
    assert all(len(h) == 64 for _, h in rows)


async def test_admin_api_needs_the_token(anon: httpx.AsyncClient) -> None:
    assert_problem(await anon.get("/admin/users"), 401, "unauthorized")
    bad = await anon.get("/admin/users", headers={"Authorization": "Bearer nope"})
    assert_problem(bad, 401, "unauthorized")
    ok = await anon.get("/admin/users", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200


async def test_admin_user_paths(anon: httpx.AsyncClient, alice: UserClient) -> None:
    assert_problem(
        await anon.post("/admin/users", json={"name": "alice"}, headers=admin_headers()),
        409,
        "user-exists",
    )
    assert_problem(
        await anon.post("/admin/users", json={"name": "a b"}, headers=admin_headers()),
        422,
        "validation-error",
    )
    assert_problem(
        await anon.post("/admin/users/nobody/keys", headers=admin_headers()), 404, "not-found"
    )
    assert_problem(
        await anon.delete("/admin/keys/ffffffff", headers=admin_headers()), 404, "not-found"
    )
    listed = (await anon.get("/admin/users", headers=admin_headers())).json()
    assert [u["name"] for u in listed["data"]] == ["alice"]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REPIC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REPIC_DATA_DIR", str(settings.data_dir))
    return settings


def test_cli_users_and_keys(cli_env: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    created = runner.invoke(cli, ["users", "create", "carol"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rpk_")
    assert "carol" in runner.invoke(cli, ["users", "list"]).stdout
    dup = runner.invoke(cli, ["users", "create", "carol"])
    assert dup.exit_code == 1
    second = runner.invoke(cli, ["keys", "create", "carol"])
    assert second.exit_code == 0
    prefix = key.split("_")[1]
    assert runner.invoke(cli, ["keys", "revoke", prefix]).exit_code == 0
    assert runner.invoke(cli, ["keys", "revoke", "ffffffff"]).exit_code == 1
    assert runner.invoke(cli, ["keys", "create", "nobody"]).exit_code == 1
