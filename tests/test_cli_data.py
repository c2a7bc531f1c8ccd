"""`repic concepts import`, `reindex`, `caption` and `dev` commands on the local database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.cli import cli
from app.cli.dev import settings_table
from app.core.settings import Settings
from tests.helpers import images
from tests.helpers.cli import concept_rows, runner
from tests.helpers.training import make_concept_database


def test_import_rap_database_of_30_concepts_is_idempotent(
    cli_env: Settings, tmp_path: Path
) -> None:
    db = make_concept_database(tmp_path / "rap", concepts=30, images_per_concept=2, size=(96, 72))
    # one broken reference and one missing file: reported and skipped, the rest imported
    document = json.loads(db.read_text())
    first_key = next(iter(document["concept_dict"]))
    entry = document["concept_dict"][first_key]
    paths = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
    (db.parent / paths[0]).write_bytes(b"not an image")
    entry["image"] = [*paths, "missing/nowhere.jpg"]
    db.write_text(json.dumps(document))

    first = runner.invoke(cli, ["concepts", "import", str(db), "--user", "alice"])
    assert first.exit_code == 1, first.output  # files were skipped
    rows = concept_rows(cli_env)
    assert len(rows) == 30
    assert sum(n for _, n in rows) == 30 * 2 - 1
    assert "nowhere.jpg" in first.stderr
    assert "2 problems" in first.stderr

    second = runner.invoke(cli, ["concepts", "import", str(db), "--user", "alice"])
    assert second.exit_code == 1, second.output
    assert concept_rows(cli_env) == rows
    assert "0 images added" in second.stderr


def test_import_keeps_display_names_and_info_as_written(cli_env: Settings, tmp_path: Path) -> None:
    (tmp_path / "iron.png").write_bytes(images.pattern(1))
    db = tmp_path / "database.json"
    entry = {"name": "Iron Man", "image": "iron.png", "info": " a red and gold suit"}
    db.write_text(json.dumps({"concept_dict": {"<ironman>": entry}}))
    result = runner.invoke(cli, ["concepts", "import", str(db), "--user", "alice"])
    assert result.exit_code == 0, result.output
    from sqlalchemy import create_engine, text

    engine = create_engine(cli_env.database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT name, display_name, info FROM concepts")).all()
    engine.dispose()
    assert [tuple(r) for r in stored] == [("ironman", "Iron Man", " a red and gold suit")]


def test_import_concept_folders(cli_env: Settings, tmp_path: Path) -> None:
    root = tmp_path / "folders"
    (root / "bo").mkdir(parents=True)
    (root / "bo" / "1.jpg").write_bytes(images.pattern(1))
    (root / "bo" / "info.txt").write_text("my corgi")
    (root / "mr. whiskers").mkdir()
    (root / "mr. whiskers" / "a.png").write_bytes(images.pattern(2, fmt="PNG"))
    result = runner.invoke(cli, ["concepts", "import", str(root), "--user", "alice"])
    assert result.exit_code == 0, result.output
    assert concept_rows(cli_env) == [("bo", 1), ("mr. whiskers", 1)]


def test_import_unknown_user_and_bad_source(cli_env: Settings, tmp_path: Path) -> None:
    assert (
        runner.invoke(cli, ["concepts", "import", str(tmp_path), "--user", "nobody"]).exit_code == 1
    )
    bad = tmp_path / "database.json"
    bad.write_text("{not json")
    assert runner.invoke(cli, ["concepts", "import", str(bad), "--user", "alice"]).exit_code == 1


def test_reindex_after_embedder_change(
    cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.tiny.clip import build_tiny_clip

    root = tmp_path / "folders"
    for i, name in enumerate(["bo", "thao"]):
        (root / name).mkdir(parents=True)
        (root / name / "1.jpg").write_bytes(images.pattern(i))
    assert runner.invoke(cli, ["concepts", "import", str(root), "--user", "alice"]).exit_code == 0
    other = build_tiny_clip(tmp_path / "other-clip", seed=7)
    monkeypatch.setenv("REPIC_EMBEDDER__PRETRAINED", str(other.checkpoint_path))
    monkeypatch.setenv("REPIC_EMBEDDER__MODEL", str(other.config_path))
    stale = runner.invoke(cli, ["caption", str(root / "bo" / "1.jpg"), "--user", "alice"])
    assert stale.exit_code == 1 and "reindex" in stale.stderr
    result = runner.invoke(cli, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "re-embedded 2 images of 1 users" in result.stderr
    again = runner.invoke(cli, ["reindex"])
    assert "re-embedded 0 images" in again.stderr
    fixed = runner.invoke(cli, ["caption", str(root / "bo" / "1.jpg"), "--user", "alice", "--json"])
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["concepts_used"][0]["name"] == "bo"


def test_caption_cli(cli_env: Settings, tmp_path: Path) -> None:
    root = tmp_path / "folders"
    (root / "bo").mkdir(parents=True)
    (root / "bo" / "1.jpg").write_bytes(images.pattern(1))
    runner.invoke(cli, ["concepts", "import", str(root), "--user", "alice"])
    result = runner.invoke(
        cli, ["caption", str(root / "bo" / "1.jpg"), "--user", "alice", "--json", "--top-k", "1"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["concepts_used"][0]["name"] == "bo" and isinstance(body["caption"], str)
    text = tmp_path / "note.txt"
    text.write_text("hello")
    assert runner.invoke(cli, ["caption", str(text), "--user", "alice"]).exit_code == 1


def test_dev_tiny_models_prints_usable_settings(tmp_path: Path) -> None:
    env = tmp_path / "demo.env"
    result = runner.invoke(
        cli,
        [
            "dev",
            "tiny-models",
            str(tmp_path / "m"),
            "--env-file",
            str(env),
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 0, result.output
    values = dict(re.findall(r"export (REPIC_\w+)=(\S+)", env.read_text()))
    assert Path(values["REPIC_EMBEDDER__PRETRAINED"].strip("'")).is_file()
    assert (Path(values["REPIC_VLM__MODEL"].strip("'")) / "config.json").is_file()
    assert values["REPIC_DATABASE_URL"].strip("'").startswith("sqlite:///")
    assert "random" in result.stderr.lower()


def test_readme_configuration_table_is_current() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "README is stale: paste `repic dev settings-table` into it"
    # Exactly once, and no stray setting rows elsewhere (a half-pasted older table).
    rows = [line for line in readme.splitlines() if line.startswith("| `REPIC_")]
    assert len(rows) == len(settings_table().strip().splitlines()) - 2
