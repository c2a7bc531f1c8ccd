"""`repic train export-feedback` and `repic captions`: corrections made over the API, read back
from the database as training samples in `build-data`'s layout, one user or (admin) all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.settings import Settings
from tests.helpers import images
from tests.helpers.api import ADMIN_TOKEN, UserClient, create
from tests.helpers.history import kept
from training.data import MANIFEST_FILE, read_rows

runner = CliRunner()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REPIC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REPIC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REPIC_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("REPIC_LOG_FORMAT", "inherit")
    return settings


async def corrections(alice: UserClient, bob: UserClient) -> dict[str, int]:
    """Alice: <thao> confirmed and taught with a box, <bo> wrongly named; a rating alone.
    Bob: <rex> confirmed."""
    bo = (await create(alice, "bo", images.pattern(1), images.pattern(2))).json()
    thao = (await create(alice, "thao", images.pattern(3), images.pattern(4))).json()
    rex = (await create(bob, "rex", images.pattern(7), images.pattern(8))).json()
    first = await kept(alice, images.pattern(5, size=(160, 120)))
    fix = {"present": [thao["id"]], "wrong": [bo["id"]], "caption": "<thao> on a bench."}
    assert (await alice.client.post(f"/captions/{first['id']}/feedback", json=fix)).is_success
    box = {"concept_id": thao["id"], "box": [20, 10, 100, 90]}
    assert (await alice.client.post(f"/captions/{first['id']}/teach", json=box)).is_success
    rated = await kept(alice, images.pattern(6))
    assert (
        await alice.client.post(f"/captions/{rated['id']}/feedback", json={"rating": 4})
    ).is_success
    theirs = await kept(bob, images.pattern(9))
    fix = {"present": [rex["id"]]}
    assert (await bob.client.post(f"/captions/{theirs['id']}/feedback", json=fix)).is_success
    return {"first": first["id"], "rated": rated["id"]}


async def test_export_one_users_corrections(
    alice: UserClient, bob: UserClient, cli_env: Settings, tmp_path: Path
) -> None:
    await corrections(alice, bob)
    out = tmp_path / "export"
    result = runner.invoke(cli, ["train", "export-feedback", "--user", "alice", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 samples from 2 corrections (oct 2, vlt 1, ict 1)" in result.output
    assert "nothing verifiable: 1" in result.output
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["oct_labels"] == {"yes": 1, "no": 1}
    rows = {r["task"]: r for r in read_rows(out)}
    assert rows["ict"]["names"] == ["thao"] and len(rows["ict"]["images"]) == 3
    assert rows["vlt"]["bbox"] == [20, 10, 100, 90] and len(rows["vlt"]["images"]) == 1
    text = (out / "train.jsonl").read_text()
    assert "<thao>" in text and "rex" not in text  # Bob's corrections stay out
    check_rows(out)


def check_rows(out: Path) -> None:
    """Every row's images exist, one placeholder each, as `build-data` writes them."""
    for row in read_rows(out):
        assert all(Path(p).is_file() for p in row["images"])
        placeholders = sum(p["type"] == "image" for p in row["prompt"][-1]["content"])
        assert placeholders == len(row["images"])


async def test_all_users_needs_the_admin_token(
    alice: UserClient, bob: UserClient, cli_env: Settings, tmp_path: Path
) -> None:
    await corrections(alice, bob)
    base = ["train", "export-feedback", "--all", "--out"]
    refused = runner.invoke(cli, [*base, str(tmp_path / "a"), "--admin-token", "guess"])
    assert refused.exit_code == 1 and "admin-token" in refused.output
    both = runner.invoke(cli, [*base, str(tmp_path / "b"), "--user", "alice"])
    assert both.exit_code == 2
    result = runner.invoke(cli, [*base, str(tmp_path / "c"), "--admin-token", ADMIN_TOKEN])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "c" / MANIFEST_FILE).read_text())
    assert manifest["counts"] == {"oct": 3, "vlt": 1, "ict": 2}


async def test_captions_cli_lists_and_corrects(
    alice: UserClient, bob: UserClient, cli_env: Settings
) -> None:
    ids = await corrections(alice, bob)
    listed = runner.invoke(cli, ["captions", "list", "--user", "alice"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.stdout.splitlines() if line.strip()]
    assert [int(line.split("\t")[0]) for line in lines] == [ids["rated"], ids["first"]]
    base = ["captions", "feedback", str(ids["rated"]), "--user", "alice"]
    bad = runner.invoke(cli, [*base, "--present", "bo", "--caption", "A dog."])
    assert bad.exit_code == 1 and "<bo>" in bad.output
    ok = runner.invoke(cli, [*base, "--present", "<bo>", "--caption", "<bo> runs."])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["feedback"]["present"][0]["name"] == "bo"
    foreign = ["captions", "feedback", str(ids["rated"]), "--user", "bob", "--rating", "1"]
    refused = runner.invoke(cli, foreign)
    assert refused.exit_code == 1 and "does not exist" in refused.output
