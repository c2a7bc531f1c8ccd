"""A user's whole data: deleted with everything, or exported as a zip (API and CLI)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import cli
from app.core.blob_gc import sweep_blobs
from app.core.settings import Settings
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_delete_user_removes_everything(
    app: FastAPI, anon: httpx.AsyncClient, alice: UserClient, bob: UserClient
) -> None:
    settings = app.state.runtime.settings
    shared = images.pattern(7)
    assert (await create(alice, "bo", images.pattern(1), shared)).status_code == 201
    assert (await create(alice, "max", images.pattern(2))).status_code == 201
    assert (await create(bob, "rex", shared)).status_code == 201
    assert (await alice.client.post("/retrieve", files={"image": images.pattern(1)})).is_success
    assert any(settings.index_dir.glob("user_*"))

    resp = await anon.delete("/admin/users/ALICE", headers=admin_headers())
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": "alice", "concepts": 2, "photos": 3}

    assert_problem(await alice.client.get("/concepts"), 401, "unauthorized")
    users = (await anon.get("/admin/users", headers=admin_headers())).json()
    assert [u["name"] for u in users["data"]] == ["bob"]
    # The photos go to the grace-period sweep; shared bytes stay for bob.
    assert sweep_blobs(app.state.runtime, grace_s=0).deleted == 2
    assert len(files_under(settings.blob_dir)) == 1  # bob's photo
    assert not [p for p in settings.index_dir.glob("user_*") if "user_2" not in p.name]
    bobs = (await bob.client.get("/concepts")).json()["data"]
    image = bobs[0]["images"][0]["id"]
    assert (await bob.client.get(f"/concepts/{bobs[0]['id']}/images/{image}")).status_code == 200
    missing = await anon.delete("/admin/users/alice", headers=admin_headers())
    assert_problem(missing, 404, "not-found")


async def test_export_user_as_zip(anon: httpx.AsyncClient, alice: UserClient) -> None:
    made = await create(alice, "bo", images.pattern(1), images.pattern(2), info="likes ✨ balls")
    assert made.status_code == 201
    resp = await anon.get("/admin/users/alice/export", headers=admin_headers())
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(resp.content))
    manifest = json.loads(archive.read("concepts.json"))
    assert manifest["user"] == "alice"
    (concept,) = manifest["concepts"]
    assert concept["name"] == "bo" and concept["info"] == "likes ✨ balls"
    assert len(concept["photos"]) == 2
    for photo in concept["photos"]:
        assert archive.read(photo["path"])[:3] == b"\xff\xd8\xff"
    assert_problem(
        await anon.get("/admin/users/nobody/export", headers=admin_headers()), 404, "not-found"
    )


def test_cli_export_and_delete(cli_env: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["users", "create", "carol"]).exit_code == 0
    folder = tmp_path / "src" / "bo"
    folder.mkdir(parents=True)
    (folder / "1.jpg").write_bytes(images.pattern(3))
    imported = runner.invoke(cli, ["concepts", "import", str(folder.parent), "--user", "carol"])
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "carol.zip"
    exported = runner.invoke(cli, ["users", "export", "carol", str(out)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(zipfile.ZipFile(out).read("concepts.json"))["concepts"][0]["name"] == "bo"
    refused = runner.invoke(cli, ["users", "delete", "carol"])
    assert refused.exit_code == 2
    deleted = runner.invoke(cli, ["users", "delete", "carol", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert "1 concepts" in deleted.output
    # The photo waits for the sweep's grace period, like every unreferenced blob.
    assert files_under(cli_env.blob_dir) != []
    assert runner.invoke(cli, ["gc", "--grace-s", "0"]).exit_code == 0
    assert files_under(cli_env.blob_dir) == []
    assert "carol" not in runner.invoke(cli, ["users", "list"]).output
