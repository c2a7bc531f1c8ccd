"""`/caption-jobs` through the in-process transformers backend (tiny random Qwen2.5-VL), the
claim protocol workers share, on SQLite and PostgreSQL, and the queue each database gets."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import create_engine

from app.core.migrate import upgrade
from app.core.settings import Settings
from app.services.job_queue import build_job_queue
from store.db import make_session_factory, transaction
from store.jobs import JobRepository, NewItem
from store.repositories import UserRepository
from tests.helpers import images
from tests.helpers.api import UserClient, assert_problem, create
from tests.helpers.jobs import (
    album,
    all_results,
    procrastinate_tasks,
    wait_done,
    wait_task_succeeded,
)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"jobs": {"concurrency": 4, "poll_s": 0.05}}


async def test_job_of_30_photos_completes(alice: UserClient, app: FastAPI) -> None:
    """On SQLite through the embedded queue, on PostgreSQL through procrastinate's worker (in
    the API process, as `REPIC_JOBS__RUN_IN_API` runs it)."""
    bo = (await create(alice, "bo", images.pattern(1), info="my corgi")).json()
    parts = [
        *album(30),
        ("images", ("broken.jpg", images.truncated_jpeg(), "image/jpeg")),
    ]
    resp = await alice.client.post(
        "/caption-jobs", files=parts, data={"min_score": "-1", "max_tokens": "4"}
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["location"] == f"/caption-jobs/{job['id']}"
    assert job["progress"]["total"] == 31
    assert job["progress"]["failed"] == 1  # refused at submission; the others run

    done = await wait_done(alice.client, job["id"])
    assert done["progress"] == {"total": 31, "done": 30, "failed": 1, "running": 0}
    assert done["eta_s"] == 0 and done["finished_at"]
    rows = await all_results(alice.client, job["id"])
    assert [r["index"] for r in rows] == list(range(31))
    assert [r["filename"] for r in rows[:2]] == ["p000.jpg", "p001.jpg"]
    for row in rows[:30]:
        assert row["status"] == "done" and row["problem"] is None
        assert isinstance(row["caption"]["caption"], str)
        assert row["caption"]["concepts_used"][0]["id"] == bo["id"]
        assert "vlm" in row["caption"]["timings_ms"]
    broken = rows[30]
    assert broken["status"] == "failed" and broken["caption"] is None
    assert broken["problem"]["status"] == 422
    assert broken["problem"]["type"].startswith("urn:repic:problem:")
    settings = app.state.runtime.settings
    if settings.uses_postgresql:
        assert await wait_task_succeeded(settings.database_url) == [
            {
                "task_name": "repic.caption_job",
                "queue_name": "caption-jobs",
                "args": {"job_id": job["id"]},
                "status": "succeeded",
                "attempts": 1,  # one run
            }
        ]


async def test_two_users_jobs_run_side_by_side(
    alice: UserClient, bob: UserClient, app: FastAPI
) -> None:
    """One worker holds both jobs at once (procrastinate: a task each), sharing its photo slots."""
    jobs = []
    for user, seed in ((alice, 10), (bob, 20)):
        resp = await user.client.post(
            "/caption-jobs", files=album(3, seed=seed), data={"max_tokens": "2"}
        )
        assert resp.status_code == 202, resp.text
        jobs.append((user, resp.json()["id"]))
    for user, job_id in jobs:
        done = await wait_done(user.client, job_id)
        assert done["progress"] == {"total": 3, "done": 3, "failed": 0, "running": 0}
    settings = app.state.runtime.settings
    if settings.uses_postgresql:
        tasks = await wait_task_succeeded(settings.database_url)
        assert sorted(t["args"]["job_id"] for t in tasks) == sorted(j for _, j in jobs)


class TestWithoutWorker:
    """Jobs that stay queued: the API runs none (`REPIC_JOBS__RUN_IN_API=false`)."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"jobs": {"run_in_api": False, "max_active_per_user": 1}}

    async def test_other_users_job_is_404(self, alice: UserClient, bob: UserClient) -> None:
        job = (await alice.client.post("/caption-jobs", files=album(2))).json()
        for method, path in [
            ("GET", f"/caption-jobs/{job['id']}"),
            ("GET", f"/caption-jobs/{job['id']}/results"),
            ("DELETE", f"/caption-jobs/{job['id']}"),
        ]:
            assert_problem(await bob.client.request(method, path), 404, "not-found")
        assert (await bob.client.get("/caption-jobs")).json() == {"data": [], "count": 0}
        listed = (await alice.client.get("/caption-jobs")).json()
        assert listed["count"] == 1 and listed["data"][0]["id"] == job["id"]
        assert (await alice.client.get(f"/caption-jobs/{job['id']}")).status_code == 200

    async def test_active_job_limit(self, alice: UserClient) -> None:
        assert (await alice.client.post("/caption-jobs", files=album(1))).status_code == 202
        resp = await alice.client.post("/caption-jobs", files=album(1, seed=7))
        assert_problem(resp, 429, "too-many-jobs")
        assert (await alice.client.get("/caption-jobs")).json()["count"] == 1

    async def test_zip_archive_then_delete(self, alice: UserClient, app: FastAPI) -> None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("trip/a.jpg", images.pattern(11))
            archive.writestr("trip/b.png", images.pattern(12, fmt="PNG"))
            archive.writestr("trip/notes.txt", b"not a photo")
        resp = await alice.client.post(
            "/caption-jobs",
            files={"archive": ("trip.zip", buf.getvalue(), "application/zip")},
        )
        assert resp.status_code == 202, resp.text
        job = resp.json()
        rows = await all_results(alice.client, job["id"])
        assert [(r["filename"], r["status"]) for r in rows] == [
            ("trip/a.jpg", "pending"),
            ("trip/b.png", "pending"),
        ]
        photo_dir = Path(app.state.runtime.settings.data_dir) / "job-photos"
        assert len(list(photo_dir.rglob("*.jpg"))) == 2
        assert (await alice.client.delete(f"/caption-jobs/{job['id']}")).status_code == 204
        assert_problem(await alice.client.get(f"/caption-jobs/{job['id']}"), 404, "not-found")
        assert list(photo_dir.rglob("*.jpg")) == []

    async def test_bad_submissions(self, alice: UserClient) -> None:
        assert_problem(await alice.client.post("/caption-jobs", data={}), 422, "no-photos")
        resp = await alice.client.post(
            "/caption-jobs", files={"archive": ("a.zip", b"not a zip", "application/zip")}
        )
        assert_problem(resp, 415, "bad-archive")
        assert (await alice.client.get("/caption-jobs")).json()["count"] == 0


def test_claims_are_exclusive_and_expire(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        user = UserRepository(session).create("carol")
        job = JobRepository(session).create(
            user.id, "{}", [NewItem(f"{i}.jpg", f"k{i}") for i in range(5)]
        )
    with transaction(sessions) as session:
        first = JobRepository(session).claim(3, lease_s=60)
    with transaction(sessions) as session:
        second = JobRepository(session).claim(10, lease_s=0.001)
    assert len(first) == 3 and len(second) == 2
    assert not {c.item_id for c in first} & {c.item_id for c in second}
    # The second worker "dies": its expired photos go to the next claimant, not the first ones.
    with transaction(sessions) as session:
        third = JobRepository(session).claim(10, lease_s=60)
    assert {c.item_id for c in third} == {c.item_id for c in second}
    with transaction(sessions) as session:
        repo = JobRepository(session)
        assert not repo.record(second[0], ok=True, result="{}")  # its claim was taken over
        assert all(repo.record(c, ok=True, result="{}") for c in [*first, *third])
        assert repo.get(user.id, job.id).status == "done"  # type: ignore[union-attr]
        assert repo.progress(job.id).done == 5
    engine.dispose()


def test_postgresql_submission_defers_its_task_in_the_same_transaction(postgres_url: str) -> None:
    upgrade(postgres_url)
    queue = build_job_queue(Settings(database_url=postgres_url))
    assert queue.name == "procrastinate"
    engine = create_engine(postgres_url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        user = UserRepository(session).create("dave")
        job = JobRepository(session).create(user.id, "{}", [NewItem("a.jpg", "k")])
        queue.enqueue(session, job.id)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        lost = JobRepository(session).create(user.id, "{}", [NewItem("b.jpg", "k")])
        queue.enqueue(session, lost.id)
        raise RuntimeError("the submission fails after its task was deferred")
    engine.dispose()
    assert procrastinate_tasks(postgres_url) == [
        {
            "task_name": "repic.caption_job",
            "queue_name": "caption-jobs",
            "args": {"job_id": job.id},
            "status": "todo",
            "attempts": 0,
        }
    ]


def test_queue_follows_the_database(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'q.db'}"
    assert build_job_queue(Settings(database_url=sqlite)).name == "embedded"
    with pytest.raises(ValidationError, match="procrastinate needs PostgreSQL"):
        Settings(database_url=sqlite, jobs={"queue": "procrastinate"})
