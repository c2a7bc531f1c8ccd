"""Blob deletion by a grace-period sweep: never racing an upload, across processes; orphans,
temporaries and kill -9 leftovers swept; an object-store outage answered 503 with nothing lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core import wiring
from app.core.runtime import build_runtime
from app.core.settings import Settings
from app.services.users import UserService
from model.tiny.clip import TinyClip
from store.blobs import LocalBlobStore
from store.gc import sweep
from store.models import ConceptImage
from store.repositories import UserRepository
from tests.helpers import gc_race_worker, images
from tests.helpers.api import UserClient, assert_problem, create
from tests.helpers.replicas import migrate, new_user, replica, service_env
from tests.helpers.s3 import S3Server, make_bucket, start_s3_server
from tests.helpers.server import repic

pytestmark = pytest.mark.live

RACE_ROUNDS = 30


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Processes share a server database, as replicas do."""
    return postgres_url


def _user_id(settings: Settings, name: str) -> int:
    runtime = build_runtime(settings)
    try:
        UserService(runtime.sessions).create_user(name)
        with runtime.sessions() as session:
            user = UserRepository(session).by_name(name)
            assert user is not None
            return user.id
    finally:
        runtime.engine.dispose()


def test_upload_and_delete_of_the_same_photo_in_two_processes_never_lose_it(
    settings: Settings,
) -> None:
    from app.core.migrate import upgrade

    upgrade(settings.database_url)
    alice, bob = _user_id(settings, "alice"), _user_id(settings, "bob")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        barrier = manager.Barrier(2, timeout=120)
        up = pool.submit(gc_race_worker.uploader, settings, alice, RACE_ROUNDS, barrier)
        down = pool.submit(gc_race_worker.deleter, settings, bob, RACE_ROUNDS, barrier)
        created, swept = up.result(timeout=600), down.result(timeout=600)
    print(f"\n{RACE_ROUNDS} rounds; a sweep deleted the photo before the upload's commit {swept}x")

    runtime = build_runtime(settings)
    service = wiring.concepts(runtime)
    try:
        for round_no, concept_id in enumerate(created):
            concept = service.get(alice, concept_id)
            stored = service.image(alice, concept_id, concept.images[0].id)
            assert stored.sha256 == concept.images[0].sha256, f"round {round_no}"
        # Nothing of Bob's is left, and a sweep now keeps every one of Alice's photos.
        sweep(runtime.sessions, runtime.blobs, timedelta(0))
        for concept_id in created:
            image = service.get(alice, concept_id).images[0]
            assert runtime.blobs.exists(image.blob_key)
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_orphans_and_temporaries_go_only_after_the_grace_period(
    app: FastAPI, alice: UserClient, backend: str, request: pytest.FixtureRequest
) -> None:
    runtime = app.state.runtime
    if backend == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        from app.core.runtime import build_blob_store
        from app.core.settings import StorageSettings

        storage = StorageSettings.model_validate(server.storage_settings(make_bucket(server)))
        runtime.blobs = build_blob_store(storage, runtime.settings.blob_dir)
    big = images.pattern(1, size=(1200, 900))  # big enough for a thumbnail of its own
    kept = (await create(alice, "bo", big)).json()["images"][0]["sha256"]
    orphan = runtime.blobs.put(images.pattern(2))  # written by a request that died
    temp = None
    if isinstance(runtime.blobs, LocalBlobStore):
        temp = runtime.blobs.root / orphan.split("/")[0] / ".tmp-dead.part"
        temp.write_bytes(b"half a photo")

    young = sweep(runtime.sessions, runtime.blobs, timedelta(hours=1))
    assert (young.orphans_found, young.deleted, young.temporaries_removed) == (0, 0, 0)
    assert runtime.blobs.exists(orphan)

    later = datetime.now(UTC) + timedelta(hours=2)
    old = sweep(runtime.sessions, runtime.blobs, timedelta(hours=1), now=lambda: later)
    assert (old.orphans_found, old.deleted) == (1, 1)
    assert not runtime.blobs.exists(orphan)
    assert runtime.blobs.exists(runtime.blobs.key_for(kept))
    if temp is not None:
        assert old.temporaries_removed == 1 and not temp.exists()
    with runtime.sessions() as session:
        row = session.scalars(select(ConceptImage)).one()
        referenced = {k for k in (row.blob_key, row.prompt_blob_key, row.thumb_blob_key) if k}
    # The photo and its derivatives (thumbnail, demonstration image) are not orphans.
    assert len(referenced) >= 2
    assert {b.key for b in runtime.blobs.list_blobs()} == referenced


async def test_object_store_outage_is_503_and_loses_nothing(
    app: FastAPI, alice: UserClient, tmp_path: Path
) -> None:
    from app.core.runtime import build_blob_store
    from app.core.settings import StorageSettings

    server = start_s3_server(tmp_path / "moto")
    try:
        values = {**server.storage_settings(make_bucket(server)), "s3_timeout_s": 1.0}
        app.state.runtime.blobs = build_blob_store(
            StorageSettings.model_validate({**values, "s3_max_attempts": 1}), tmp_path
        )
        bo = (await create(alice, "bo", images.pattern(1))).json()
        photo = f"/concepts/{bo['id']}/images/{bo['images'][0]['id']}"
        before = (await alice.client.get(photo)).content

        server.process.send_signal(signal.SIGSTOP)  # up but answering nothing, as in a hang
        try:
            refused = await create(alice, "rex", images.pattern(2))
            body = assert_problem(refused, 503, "storage-unavailable")
            assert "REPIC_STORAGE__S3" in str(body["detail"])
            assert_problem(await alice.client.get(photo), 503, "storage-unavailable")
            listed = (await alice.client.get("/concepts")).json()
            assert [c["name"] for c in listed["data"]] == ["bo"]
        finally:
            server.process.send_signal(signal.SIGCONT)

        assert (await alice.client.get(photo)).content == before
        assert (await create(alice, "rex", images.pattern(2))).status_code == 201
    finally:
        server.stop()


def test_kill_9_mid_ingest_keeps_every_acknowledged_write_and_sweeps_the_rest(
    postgres_url: str, tmp_path: Path, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> None:
    env = service_env(postgres_url, tmp_path / "data", tiny_clip, tiny_qwen_dir)
    migrate(env)
    key = new_user(env, "alice")
    server = replica(env, tmp_path, "api")
    acknowledged: dict[str, str] = {}
    seed = iter(range(100, 10_000))

    def upload_until_refused() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            while True:
                name, photo = f"c{next(seed)}", images.pattern(next(seed), size=(160, 120))
                try:
                    resp = c.post(
                        "/concepts",
                        data={"name": name, "info": ""},
                        files=[("images", ("p.jpg", photo, "image/jpeg"))],
                        timeout=30,
                    )
                except httpx.TransportError:
                    return
                if resp.status_code == 201:
                    acknowledged[name] = resp.json()["images"][0]["sha256"]

    server.start()
    server.wait_healthy()
    # Three writers, so the kill lands in the middle of several writes at different stages.
    clients = [threading.Thread(target=upload_until_refused) for _ in range(3)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    for client in clients:
        client.join(30)

    blob_dir = tmp_path / "data" / "blobs"
    # A writer killed between its temporary file and the rename leaves these behind.
    (blob_dir / "00").mkdir(parents=True, exist_ok=True)
    stale = blob_dir / "00" / ".tmp-killed.part"
    stale.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    server.start()
    server.wait_healthy()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            listed = c.get("/concepts", params={"limit": 100}).json()
            stored = {item["name"]: item for item in listed["data"]}
            assert set(acknowledged) <= set(stored)
            for name, sha in acknowledged.items():
                image = stored[name]["images"][0]
                assert image["sha256"] == sha
                got = c.get(f"/concepts/{stored[name]['id']}/images/{image['id']}")
                assert got.status_code == 200, name
        print(f"\nkill -9 mid-ingest: {len(acknowledged)} acknowledged, {len(stored)} stored")
        repic(env, "gc", "--grace-s", "0")
        referenced = {f"{i['images'][0]['sha256']}.jpg" for i in stored.values()}
        left = {p.name for p in blob_dir.rglob("*") if p.is_file()}
        assert left == referenced
    finally:
        server.kill()


class TestPeriodicSweep:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"storage": {"gc_interval_s": 0.05, "gc_grace_s": 0}}

    async def test_the_app_sweeps_by_itself_when_configured(
        self, app: FastAPI, alice: UserClient
    ) -> None:
        created = (await create(alice, "bo", images.pattern(3))).json()
        key = app.state.runtime.blobs.key_for(created["images"][0]["sha256"])
        assert (await alice.client.delete(f"/concepts/{created['id']}")).status_code == 204
        for _ in range(600):  # the sweep runs every 50 ms; give it up to 30 s on a busy machine
            if not app.state.runtime.blobs.exists(key):
                break
            await asyncio.sleep(0.05)
        assert not app.state.runtime.blobs.exists(key)
