"""`repic caption-album`: a folder becomes one job, captioned in-process, results in a file;
an interrupted run resumes the same job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.settings import Settings
from tests.helpers import images

pytestmark = pytest.mark.live

runner = CliRunner()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


def _album(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "trip"
    (folder / "day2").mkdir(parents=True)
    for i in range(count):
        sub = folder / "day2" if i % 2 else folder
        (sub / f"{i:02d}.jpg").write_bytes(images.pattern(40 + i))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_caption_album_writes_jsonl_and_csv(cli_env: Settings, tmp_path: Path) -> None:
    folder = _album(tmp_path, 4)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        cli, ["caption-album", str(folder), "--user", "alice", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["filename"] for r in rows) == ["00.jpg", "02.jpg", "day2/01.jpg", "day2/03.jpg"]
    assert all(r["status"] == "done" and isinstance(r["caption"]["caption"], str) for r in rows)
    assert not (tmp_path / "out.jsonl.job").exists()

    table = tmp_path / "out.csv"
    result = runner.invoke(
        cli, ["caption-album", str(folder), "--user", "alice", "--output", str(table)]
    )
    assert result.exit_code == 0, result.output
    with table.open() as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["done"] * 4


def test_caption_album_resumes_its_job(cli_env: Settings, tmp_path: Path) -> None:
    from app.core import wiring
    from app.core.runtime import build_runtime
    from app.services.jobs import JobOptions
    from store.repositories import UserRepository

    folder = _album(tmp_path, 2)
    out = tmp_path / "out.jsonl"
    # An earlier run submitted the job and was interrupted before any photo was captioned.
    runtime = build_runtime(Settings())
    with runtime.sessions() as session:
        user = UserRepository(session).by_name("alice")
        assert user is not None
    job = wiring.jobs(runtime).submit(user.id, [("only.jpg", images.pattern(9))], JobOptions())
    runtime.engine.dispose()
    (tmp_path / "out.jsonl.job").write_text(job.job.id + "\n")

    result = runner.invoke(
        cli, ["caption-album", str(folder), "--user", "alice", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"resuming job {job.job.id}" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["filename"], r["status"]) for r in rows] == [("only.jpg", "done")]
