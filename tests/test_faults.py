"""Faults a deployment meets: PostgreSQL restarted under traffic, and a full disk. Real ones: a
throw-away PostgreSQL cluster that is really stopped, a size-limited tmpfs that really fills."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create
from tests.helpers.live_server import live_server, prepare, server_env
from tests.helpers.mounts import small_tmpfs
from tests.helpers.own_postgres import own_postgres

pytestmark = pytest.mark.live

MiB = 1024 * 1024


def test_postgres_restart_mid_traffic_gives_503_then_recovers(
    tmp_path: Path, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> None:
    with own_postgres() as pg:
        env = server_env(tmp_path, tiny_clip.config_path, tiny_clip.checkpoint_path, tiny_qwen_dir)
        env["REPIC_DATABASE_URL"] = pg.url
        env["REPIC_PRELOAD_MODELS"] = "false"
        # The traffic loop uploads as fast as it can: the per-user rate limit is not under test.
        env["REPIC_QUOTA__REQUESTS_PER_MINUTE"] = "1000000"
        env["REPIC_QUOTA__REQUEST_BURST"] = "100000"
        with live_server(env, prepare(env), tmp_path / "server.log") as server:
            client = httpx.Client(base_url=server.url, headers=server.auth, timeout=60)
            acknowledged: list[int] = []
            statuses: list[int] = []
            stop = threading.Event()

            def traffic() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    resp = client.post(
                        "/concepts",
                        data={"name": f"c{i}"},
                        files=[("images", ("a.jpg", images.pattern(i % 5), "image/jpeg"))],
                    )
                    statuses.append(resp.status_code)
                    if resp.status_code == 201:
                        acknowledged.append(resp.json()["id"])

            worker = threading.Thread(target=traffic)
            worker.start()
            try:
                time.sleep(1.5)
                pg.stop()
                down = client.get("/concepts")
                time.sleep(1.0)
                pg.start()
                pg.wait_ready()
                time.sleep(1.5)
            finally:
                stop.set()
                worker.join(60)
            assert_problem(down, 503, "database-unavailable")
            assert down.headers["retry-after"]
            assert 503 in statuses and not [s for s in statuses if s >= 500 and s != 503]
            assert statuses[-1] == 201, statuses[-10:]  # recovered, no restart of the service
            stored: set[int] = set()
            while len(page := _page(client, len(stored))) > 0:
                stored |= {c["id"] for c in page}
            assert set(acknowledged) <= stored
            client.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", 24 * MiB) as disk:
        yield disk


@pytest.fixture
def database_url(small_disk: Path) -> str:
    return f"sqlite:///{small_disk / 'repic.db'}"


@pytest.fixture
def reserve() -> int:
    return 6 * MiB


@pytest.fixture
def settings_overrides(small_disk: Path, reserve: int) -> dict[str, object]:
    return {"data_dir": small_disk / "data", "min_free_disk_bytes": reserve}


def fill(disk: Path, leave_free: int) -> Path:
    """Write a file that leaves about ``leave_free`` bytes free (0: until ENOSPC)."""
    filler = disk / "filler"
    with filler.open("wb") as fh:
        try:
            while shutil.disk_usage(disk).free > leave_free:
                fh.write(b"\0" * min(MiB, max(4096, shutil.disk_usage(disk).free - leave_free)))
                fh.flush()
        except OSError:
            pass  # ENOSPC: the disk is full
    return filler


async def test_full_disk_refuses_uploads_and_still_deletes(
    alice: UserClient, anon: httpx.AsyncClient, small_disk: Path
) -> None:
    kept = (await create(alice, "kept", images.pattern(1))).json()
    doomed = (await create(alice, "doomed", images.pattern(2), images.pattern(3))).json()
    filler = fill(small_disk, leave_free=2 * MiB)

    body = assert_problem(await create(alice, "new", images.pattern(4)), 503, "storage-full")
    assert "deleting still works" in str(body["detail"])
    ready = await anon.get("/readyz", headers=admin_headers())
    assert ready.status_code == 503
    assert "low disk space" in ready.json()["components"]["disk"]["detail"]

    assert (await alice.client.delete(f"/concepts/{doomed['id']}")).status_code == 204
    assert (await alice.client.get(f"/concepts/{doomed['id']}")).status_code == 404

    filler.unlink()
    assert (await create(alice, "new", images.pattern(4))).status_code == 201
    image = await alice.client.get(f"/concepts/{kept['id']}/images/{kept['images'][0]['id']}")
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    with sqlite3.connect(small_disk / "repic.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("reserve", [0])
async def test_enospc_without_reserve_is_503_and_stores_nothing(
    alice: UserClient, small_disk: Path
) -> None:
    """Without the reserve the disk really fills: the upload fails cleanly (the reserve above is
    what keeps deletes and the database working)."""
    assert (await create(alice, "first", images.pattern(1))).status_code == 201
    filler = fill(small_disk, leave_free=0)
    resp = await create(alice, "second", images.pattern(2))
    assert resp.status_code == 503, resp.text
    filler.unlink()
    names = [c["name"] for c in (await alice.client.get("/concepts")).json()["data"]]
    assert names == ["first"]


def _page(client: httpx.Client, offset: int) -> list[dict[str, int]]:
    resp = client.get("/concepts", params={"limit": 100, "offset": offset})
    assert resp.status_code == 200, resp.text
    data: list[dict[str, int]] = resp.json()["data"]
    return data
