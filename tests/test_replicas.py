"""Two API replicas (uvicorn processes) sharing PostgreSQL and an S3-compatible store, behind
HAProxy from Debian's packages configured by deploy/haproxy/haproxy.cfg, all on loopback.

Prints the cross-replica visibility latency (run with -s to see it)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from model.tiny.clip import TinyClip
from tests.conftest import postgres_base_url
from tests.helpers import images
from tests.helpers.replicas import Replica, migrate, new_user, replica, service_env
from tests.helpers.s3 import S3Server, make_bucket
from tests.helpers.server import REPO_ROOT, free_port, start_process, wait_until_answers

pytestmark = pytest.mark.slow

HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
INSTALL = REPO_ROOT / "tests" / "proxy" / "install.sh"
VISIBILITY_ROUNDS = 8


@dataclass
class Cluster:
    one: Replica
    two: Replica
    proxy_url: str
    alice: str
    bob: str


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def shared_schema() -> Iterator[str]:
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _haproxy() -> str:
    done = subprocess.run([INSTALL], capture_output=True, text=True)
    assert done.returncode == 0, (
        f"tests/proxy/install.sh exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(found).exists(), "tests/proxy/install.sh did not install haproxy"
    return found


@pytest.fixture(scope="module")
def cluster(
    shared_schema: str,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip: TinyClip,
    tiny_qwen_dir: Path,
) -> Iterator[Cluster]:
    haproxy = _haproxy()
    root = tmp_path_factory.mktemp("replicas")
    storage = s3_server.env(make_bucket(s3_server))
    envs = [
        service_env(shared_schema, root / f"data-{n}", tiny_clip, tiny_qwen_dir, storage)
        for n in (1, 2)
    ]
    migrate(envs[0])
    alice, bob = new_user(envs[0], "alice"), new_user(envs[0], "bob")
    one, two = replica(envs[0], root, "api-1"), replica(envs[1], root, "api-2")
    proxy = None
    try:
        for r in (one, two):
            r.start()
        for r in (one, two):
            r.wait_healthy()
        proxy_port = free_port()
        proxy_env = {
            **os.environ,
            "REPIC_PROXY_BIND": f"127.0.0.1:{proxy_port}",
            "REPIC_API_1": f"127.0.0.1:{one.port}",
            "REPIC_API_2": f"127.0.0.1:{two.port}",
        }
        proxy_log = root / "haproxy.log"
        proxy = start_process([haproxy, "-db", "-f", str(HAPROXY_CFG)], proxy_env, proxy_log)
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        wait_until_answers(
            proxy.process, f"{proxy_url}/healthz", proxy_log, what="haproxy", timeout_s=30
        )
        yield Cluster(one, two, proxy_url, alice, bob)
    finally:
        if proxy is not None:
            proxy.stop(10)
        for r in (one, two):
            r.kill()


def _create(base: str, key: str, name: str, seed: int) -> httpx.Response:
    return httpx.post(
        f"{base}/concepts",
        headers=_auth(key),
        data={"name": name, "info": f"{name} info"},
        files=[("images", ("p.jpg", images.pattern(seed), "image/jpeg"))],
        timeout=60,
    )


def _retrieve(base: str, key: str, seed: int) -> list[int]:
    resp = httpx.post(
        f"{base}/retrieve",
        headers=_auth(key),
        files={"image": ("q.jpg", images.pattern(seed), "image/jpeg")},
        data={"min_score": "-1", "top_k": "8"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return [d["concept"]["id"] for d in resp.json()["data"]]


def test_created_on_one_replica_is_retrieved_and_captioned_on_the_other_at_once(
    cluster: Cluster,
) -> None:
    latencies = []
    for n in range(VISIBILITY_ROUNDS):
        writer, reader = (cluster.one, cluster.two) if n % 2 == 0 else (cluster.two, cluster.one)
        # Warm the reader's index cache first, so the check is of invalidation, not first load.
        _retrieve(reader.url, cluster.alice, 900 + n)
        created = _create(writer.url, cluster.alice, f"v{n}", 900 + n)
        assert created.status_code == 201, created.text
        acknowledged = time.perf_counter()
        concept_id = created.json()["id"]
        assert concept_id in _retrieve(reader.url, cluster.alice, 900 + n)  # first try, no retry
        latencies.append(time.perf_counter() - acknowledged)
        got = httpx.get(
            f"{reader.url}/concepts/{concept_id}/images/{created.json()['images'][0]['id']}",
            headers=_auth(cluster.alice),
        )
        assert got.status_code == 200 and got.content
    captioned = httpx.post(
        f"{cluster.two.url}/caption",
        headers=_auth(cluster.alice),
        files={"image": ("q.jpg", images.pattern(900), "image/jpeg")},
        data={"concept_ids": str(created.json()["id"])},
        timeout=120,
    )
    assert captioned.status_code == 200, captioned.text
    assert [c["id"] for c in captioned.json()["concepts_used"]] == [created.json()["id"]]
    print(
        f"\ncross-replica visibility (201 on one -> retrieved on the other, first try): "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)}"
    )


def test_deleted_on_one_replica_is_never_retrieved_on_the_other(cluster: Cluster) -> None:
    for n in range(3):
        created = _create(cluster.one.url, cluster.bob, f"d{n}", 950 + n)
        assert created.status_code == 201
        concept_id = created.json()["id"]
        assert concept_id in _retrieve(cluster.two.url, cluster.bob, 950 + n)  # cached there
        deleted = httpx.delete(
            f"{cluster.one.url}/concepts/{concept_id}", headers=_auth(cluster.bob)
        )
        assert deleted.status_code == 204
        for r in (cluster.two, cluster.one):
            assert concept_id not in _retrieve(r.url, cluster.bob, 950 + n)
            gone = httpx.get(f"{r.url}/concepts/{concept_id}", headers=_auth(cluster.bob))
            assert gone.status_code == 404
        with_it = httpx.post(
            f"{cluster.two.url}/caption",
            headers=_auth(cluster.bob),
            files={"image": ("q.jpg", images.pattern(950 + n), "image/jpeg")},
            data={"concept_ids": str(concept_id)},
            timeout=60,
        )
        assert with_it.status_code == 404


def test_killing_one_replica_mid_traffic_loses_no_committed_write(cluster: Cluster) -> None:
    key = new_user(cluster.one.env, "carol")
    acknowledged: dict[str, str] = {}
    failed: list[int] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        n = 0
        seed = 2000 + worker * 500
        with httpx.Client(base_url=cluster.proxy_url, headers=_auth(key), timeout=60) as c:
            while not stop.is_set():
                name = f"k{worker}-{n}"
                try:
                    resp = c.post(
                        "/concepts",
                        data={"name": name, "info": ""},
                        files=[("images", ("p.jpg", images.pattern(seed + n), "image/jpeg"))],
                    )
                except httpx.TransportError:
                    failed.append(0)
                else:
                    if resp.status_code == 201:
                        acknowledged[name] = resp.json()["images"][0]["sha256"]
                    else:
                        failed.append(resp.status_code)
                n += 1

    workers = [threading.Thread(target=traffic, args=(w,)) for w in range(2)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    cluster.one.kill()
    killed_at = len(acknowledged)
    deadline = time.monotonic() + 60
    while len(acknowledged) < killed_at + 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    for w in workers:
        w.join(60)
    assert len(acknowledged) >= killed_at + 6, "traffic stopped after the kill"
    print(f"\nkill -9 of one replica: {len(acknowledged)} acknowledged, answers lost {failed}")

    listed = httpx.get(
        f"{cluster.proxy_url}/concepts", headers=_auth(key), params={"limit": 100}
    ).json()
    stored = {c["name"]: c for c in listed["data"]}
    assert set(acknowledged) <= set(stored)
    for name, sha in acknowledged.items():
        image = stored[name]["images"][0]
        assert image["sha256"] == sha
        got = httpx.get(
            f"{cluster.proxy_url}/concepts/{stored[name]['id']}/images/{image['id']}",
            headers=_auth(key),
        )
        assert got.status_code == 200, name
