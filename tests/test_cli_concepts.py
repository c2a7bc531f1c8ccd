"""`repic concepts import/list/export/delete`, `repic keys list` and what `repic caption` says:
counts, limits, re-imports, exit codes and errors that name CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import cli
from app.core.settings import Settings
from tests.helpers import images
from tests.helpers.cli import concept_rows, runner


def folder(root: Path, name: str, photos: int, info: str | None = None, seed: int = 0) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for i in range(photos):
        (path / f"{i:02d}.jpg").write_bytes(images.pattern(seed + i))
    if info is not None:
        (path / "info.txt").write_text(info)
    return path


def import_(root: Path) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["concepts", "import", str(root), "--user", "alice"])
    return result.exit_code, result.stdout, result.stderr


def test_import_over_the_photo_limit_says_so_and_fails(
    cli_env: Settings,
    tmp_path: Path,
) -> None:
    folder(tmp_path / "src", "bo", 12)
    code, _, stderr = import_(tmp_path / "src")
    assert code == 1
    assert "12 photos, but a concept keeps at most 10" in stderr
    assert "10.jpg, 11.jpg" in stderr
    assert "1 concept read, 10 images added, 1 problem\n" in stderr
    assert concept_rows(cli_env) == [("bo", 10)]


def test_reimport_takes_an_edited_info_txt(
    cli_env: Settings,
    tmp_path: Path,
) -> None:
    bo = folder(tmp_path / "src", "bo", 1, info="my corgi")
    assert import_(tmp_path / "src")[0] == 0
    (bo / "info.txt").write_text("my corgi, who loves the beach")
    (bo / "category.txt").write_text("dog")
    code, stdout, stderr = import_(tmp_path / "src")
    assert code == 0, stderr
    assert "text updated" in stdout and "unchanged" not in stdout
    listed = runner.invoke(cli, ["concepts", "list", "--user", "alice", "--json"])
    (row,) = json.loads(listed.stdout)["data"]
    assert row["info"] == "my corgi, who loves the beach" and row["category"] == "dog"
    again = import_(tmp_path / "src")
    assert again[0] == 0 and "unchanged" in again[1]


def test_import_counts_every_skipped_file_and_concept(
    cli_env: Settings,
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    folder(src, "bo", 2)
    broken = folder(src, "thao", 0)
    (broken / "1.jpg").write_bytes(b"not a photo")
    (broken / "2.jpg").write_bytes(b"nor this")
    folder(src, "empty", 0)
    code, _, stderr = import_(src)
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped:")]
    # thao: two unreadable files and then no usable image; empty: no image at all
    assert len(skipped) == 4
    assert f"2 concepts read, 2 images added, {len(skipped)} problems" in stderr
    assert code == 1
    assert concept_rows(cli_env) == [("bo", 2)]


def test_list_export_delete_and_import_back(
    cli_env: Settings,
    tmp_path: Path,
) -> None:
    folder(tmp_path / "src", "bo", 2, info="my corgi")
    folder(tmp_path / "src", "mr. whiskers", 1, seed=5)
    assert import_(tmp_path / "src")[0] == 0
    listed = runner.invoke(cli, ["concepts", "list", "--user", "alice"])
    assert listed.exit_code == 0 and "mr. whiskers" in listed.stdout
    assert "2 concepts" in listed.stderr

    out = tmp_path / "export"
    exported = runner.invoke(cli, ["concepts", "export", str(out), "--user", "alice"])
    assert exported.exit_code == 0, exported.output
    assert "2 concepts and 3 photos" in exported.stderr
    document = json.loads((out / "database.json").read_text())
    assert document["concept_dict"]["<bo>"]["info"] == "my corgi"
    refused = runner.invoke(cli, ["concepts", "export", str(out), "--user", "alice"])
    assert refused.exit_code == 2 and "not an empty folder" in refused.stderr

    assert runner.invoke(cli, ["concepts", "delete", "<bo>", "--user", "alice"]).exit_code == 2
    deleted = runner.invoke(cli, ["concepts", "delete", "<bo>", "--user", "alice", "--yes"])
    assert deleted.exit_code == 0 and "deleted <bo>" in deleted.stdout
    assert concept_rows(cli_env) == [("mr. whiskers", 1)]
    gone = runner.invoke(cli, ["concepts", "delete", "bo", "--user", "alice", "--yes"])
    assert gone.exit_code == 1 and "repic concepts list --user alice" in gone.stderr

    code, _, stderr = import_(out / "database.json")
    assert code == 0, stderr
    assert concept_rows(cli_env) == [("bo", 2), ("mr. whiskers", 1)]


def test_keys_list_shows_prefixes_and_revocations(cli_env: Settings) -> None:
    created = runner.invoke(cli, ["keys", "create", "alice"])
    prefix = created.stdout.strip()[4:12]
    assert runner.invoke(cli, ["keys", "revoke", prefix]).exit_code == 0
    listed = runner.invoke(cli, ["keys", "list", "alice"], terminal_width=200)
    assert listed.exit_code == 0
    rows = [line.strip("│ ").split(" │ ") for line in listed.stdout.splitlines() if "│" in line]
    assert len(rows) == 2  # the first key and this one
    revoked = {cells[0]: cells[2:] for cells in rows}
    assert revoked.pop(prefix) != [] and list(revoked.values()) == [[]]
    assert runner.invoke(cli, ["keys", "list", "nobody"]).exit_code == 1


def test_caption_json_timings_prompt_style_and_unknown_concepts(
    cli_env: Settings,
    tmp_path: Path,
) -> None:
    folder(tmp_path / "src", "bo", 1)
    assert import_(tmp_path / "src")[0] == 0
    photo = str(tmp_path / "src" / "bo" / "00.jpg")
    result = runner.invoke(
        cli, ["caption", photo, "--user", "alice", "--json", "--prompt-style", "zero_shot"]
    )
    assert result.exit_code == 0, result.output
    timings = json.loads(result.stdout)["timings_ms"]
    assert {"decode", "embed", "search", "vlm", "total"} <= set(timings)
    assert timings["total"] >= sum(v for k, v in timings.items() if k != "total")
    bad_style = runner.invoke(cli, ["caption", photo, "--user", "alice", "--prompt-style", "x"])
    assert bad_style.exit_code == 2
    unknown = runner.invoke(cli, ["caption", photo, "--user", "alice", "--concept-id", "999"])
    assert unknown.exit_code == 1
    assert "GET /concepts" not in unknown.stderr
    assert "repic concepts list --user alice" in unknown.stderr
