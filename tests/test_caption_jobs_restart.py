"""A job survives SIGKILL of the API that runs it, then of a `repic worker`: after each restart
it resumes, and every photo ends with exactly one caption (none finished before a kill is redone).

The in-process transformers backend (tiny random Qwen2.5-VL), so photos take long enough for a
kill to land mid-job. Once on each queue: the embedded one on SQLite (the default, shared by the
API and worker processes), and procrastinate on PostgreSQL, whose killed workers' tasks come back
through its heartbeats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.jobs import album, procrastinate_tasks, service_env, start_worker
from tests.helpers.server import Process, create_users, start_server

pytestmark = pytest.mark.live

PHOTOS = 16


def _rows(db_url: str) -> dict[int, dict[str, Any]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status, attempts, result, finished_at FROM caption_job_items")
        ).mappings()
        out = {int(r["id"]): dict(r) for r in rows}
    engine.dispose()
    return out


def _wait(client: httpx.Client, job_id: str, *, done_at_least: int, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        progress = client.get(f"/caption-jobs/{job_id}").json()["progress"]
        if progress["done"] >= done_at_least:
            return int(progress["done"])
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)


@pytest.fixture(params=["embedded", "procrastinate"])
def queue_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The queue under test, and the database it needs."""
    if request.param == "embedded":
        return {"REPIC_JOBS__QUEUE": "embedded"}  # on SQLite (service_env's default)
    url: str = request.getfixturevalue("postgres_url")
    return {"REPIC_JOBS__QUEUE": "procrastinate", "REPIC_DATABASE_URL": url}


def test_killed_api_then_killed_worker_caption_each_photo_once(
    tmp_path: Path, tiny_clip: TinyClip, tiny_qwen_dir: Path, queue_env: dict[str, str]
) -> None:
    env = service_env(
        tmp_path,
        {
            **queue_env,
            "REPIC_EMBEDDER__MODEL": str(tiny_clip.config_path),
            "REPIC_EMBEDDER__PRETRAINED": str(tiny_clip.checkpoint_path),
            "REPIC_VLM__BACKEND": "transformers",
            "REPIC_VLM__MODEL": str(tiny_qwen_dir),
            "REPIC_JOBS__CONCURRENCY": "2",
            "REPIC_JOBS__POLL_S": "0.1",
            # Short, for a quick test; long enough that a busy machine's late heartbeat is
            # not taken for a dead worker (that would only run a task twice, harmlessly).
            "REPIC_JOBS__LEASE_S": "5",
        },
    )
    db_url = env["REPIC_DATABASE_URL"]
    key = create_users(env, "alice")["alice"]
    api = start_server(env, tmp_path / "api.log")
    worker: Process | None = None
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
            created = client.post(
                "/concepts",
                data={"name": "bo"},
                files={"images": ("bo.jpg", images.pattern(1), "image/jpeg")},
            )
            assert created.status_code == 201, created.text
            resp = client.post("/caption-jobs", files=album(PHOTOS), data={"max_tokens": "32"})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            _wait(client, job_id, done_at_least=3)
        api.kill()
        before_api_kill = _rows(db_url)
        done_1 = {i for i, r in before_api_kill.items() if r["status"] == "done"}
        assert 3 <= len(done_1) < PHOTOS, "the kill must land mid-job"

        # Restart as a split deployment: a worker that runs jobs (starting while the API does),
        # and an API that runs none.
        worker = start_worker(env, tmp_path / "worker.log")
        api = start_server({**env, "REPIC_JOBS__RUN_IN_API": "false"}, tmp_path / "api.log")
        with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
            _wait(client, job_id, done_at_least=len(done_1) + 2)
            worker.kill()
            before_worker_kill = _rows(db_url)
            done_2 = {i for i, r in before_worker_kill.items() if r["status"] == "done"}
            assert len(done_2) < PHOTOS, "the kill must land mid-job"
            worker = start_worker(env, tmp_path / "worker.log")
            _wait(client, job_id, done_at_least=PHOTOS)
            body = client.get(f"/caption-jobs/{job_id}").json()
    finally:
        if worker is not None:
            worker.stop()
        api.stop()

    assert body["status"] == "done"
    assert body["progress"] == {"total": PHOTOS, "done": PHOTOS, "failed": 0, "running": 0}
    final = _rows(db_url)
    assert all(r["status"] == "done" and r["result"] for r in final.values())
    # Captions finished before a kill were kept as they were: never captioned again.
    for earlier, done in ((before_api_kill, done_1), (before_worker_kill, done_2)):
        for item in done:
            assert final[item] == earlier[item]
    assert all(r["attempts"] == 1 for i, r in final.items() if i in done_1)
    # Photos in flight at a kill were taken again once their lease ran out.
    assert max(r["attempts"] for r in final.values()) >= 2
    if queue_env["REPIC_JOBS__QUEUE"] == "procrastinate":
        # One task, run by the killed API's worker, retried by procrastinate when its
        # heartbeats stopped, run by the killed worker, retried again, then run to the end.
        (task,) = procrastinate_tasks(db_url)
        assert task["args"] == {"job_id": job_id} and task["status"] == "succeeded"
        assert task["attempts"] >= 3
