"""vLLM's own router (`vllm-router` from PyPI, `--policy consistent_hash`) in front of real CPU
vLLM servers, with the service captioning through it.

The service sends an opaque per-user key (a digest, never the user name) in ``X-User-ID`` and
``X-Session-ID``; the router hashes it, so one user's demonstrations meet one replica's prefix
cache. Which backend served a request is read from each server's own request counter.

The router runs in front of the session's server, then in front of two backends (marker `fleet`:
a second vLLM start, about a minute on two cores; `make test` runs it, `make test-fast` not).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.services.captioning import cache_salt
from store.repositories import UserRepository
from tests.helpers import images
from tests.helpers.api import UserClient, caption, new_user
from tests.helpers.server import free_port, start_process, wait_until_answers
from tests.helpers.vllm import VLLMServer

pytestmark = pytest.mark.vllm

ROUTER = Path(sys.executable).parent / "vllm-router"
USERS = 8
REQUESTS_PER_USER = 3
_COUNTER = re.compile(r"^vllm:request_success_total\{[^}]*\}\s+([0-9.e+]+)$", re.MULTILINE)


@dataclass
class Router:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_router(workers: list[VLLMServer], work_dir: Path) -> Router:
    """vllm-router on loopback, consistent hashing, health checks every second."""
    assert ROUTER.exists(), "vllm-router is missing: `make venv` installs it (dev extra)"
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / f"router-{port}.log"
    argv = [
        str(ROUTER),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--policy", "consistent_hash",
        "--worker-urls", *[w.root_url for w in workers],
        "--prometheus-host", "127.0.0.1",
        "--prometheus-port", str(free_port()),
        "--health-check-interval-secs", "1",
        "--health-failure-threshold", "1",
        "--log-level", "debug",
    ]  # fmt: skip
    process = start_process(argv, dict(os.environ), log).process
    router = Router(f"http://127.0.0.1:{port}", log, process)
    try:
        wait_until_answers(process, f"{router.url}/health", log, what="vllm-router", timeout_s=60)
    except BaseException:
        router.stop()
        raise
    return router


def served(server: VLLMServer) -> float:
    """Requests the server has finished, from its own Prometheus counter."""
    text = httpx.get(f"{server.root_url}/metrics", timeout=5).text
    return sum(float(v) for v in _COUNTER.findall(text))


def _vlm_settings(router: Router, server: VLLMServer) -> dict[str, object]:
    return {
        "vlm": {
            "backend": "openai",
            "model": server.model_name,
            "base_url": f"{router.url}/v1",
            "api_key": server.api_key,
            "max_tokens": 4,
            "max_pixels": server.max_pixels,
            "demo_max_pixels": server.max_pixels,
            "timeout_s": 120.0,
            "connect_retries": 2,
        }
    }


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


@pytest.fixture
def fleet(vllm_server: VLLMServer) -> list[VLLMServer]:
    """The backends behind the router: the session's server alone, unless overridden."""
    return [vllm_server]


@pytest.fixture
def router(fleet: list[VLLMServer], tmp_path: Path) -> Iterator[Router]:
    r = start_router(fleet, tmp_path / "router")
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def settings_overrides(router: Router, fleet: list[VLLMServer]) -> dict[str, object]:
    return _vlm_settings(router, fleet[0])


async def _which_backend(user: UserClient, fleet: list[VLLMServer], seed: int) -> int:
    before = [served(s) for s in fleet]
    resp = await caption(user, images.pattern(seed))
    assert resp.status_code == 200, resp.text
    grown = [i for i, s in enumerate(fleet) if served(s) > before[i]]
    assert len(grown) == 1, f"one request, counters grew on {grown}"
    return grown[0]


async def test_captions_go_through_the_router_keyed_by_an_opaque_user_digest(
    app: FastAPI, alice: UserClient, router: Router, fleet: list[VLLMServer]
) -> None:
    for n in range(3):
        assert await _which_backend(alice, fleet, 40 + n) == 0
    log = router.log.read_text(errors="replace")
    with app.state.runtime.sessions() as session:
        user = UserRepository(session).by_name("alice")
        assert user is not None
    key = hashlib.sha256(cache_salt(user.id).encode()).hexdigest()
    assert f"key='header:x-session-id:{key}'" in log, log[-2000:]
    assert "alice" not in log


@pytest.mark.fleet
@pytest.mark.stops_vllm(order=1)
class TestTwoBackends:
    @pytest.fixture
    def fleet(self, vllm_server: VLLMServer, second_vllm_server: VLLMServer) -> list[VLLMServer]:
        return [vllm_server, second_vllm_server]

    async def test_one_user_one_backend_both_serve_and_one_stopped_is_survived(
        self, anon: httpx.AsyncClient, router: Router, fleet: list[VLLMServer]
    ) -> None:
        users = [await new_user(anon, f"user{n}") for n in range(USERS)]
        landed: dict[str, list[int]] = {u.name: [] for u in users}
        for r in range(REQUESTS_PER_USER):
            for n, user in enumerate(users):
                landed[user.name].append(await _which_backend(user, fleet, 100 * r + n))
        hits = sum(sum(1 for b in backends if b == backends[0]) for backends in landed.values())
        total = USERS * REQUESTS_PER_USER
        per_backend = [sum(b.count(i) for b in landed.values()) for i in range(len(fleet))]
        print(f"affinity hit rate {hits}/{total}; requests per backend {per_backend}")
        assert hits == total
        assert all(per_backend)

        fleet[1].stop()
        answered = 0
        for n, user in enumerate(users):
            resp = await caption(user, images.pattern(900 + n))
            answered += resp.status_code == 200
        print(f"with one backend stopped: {answered}/{USERS} captions answered")
        assert answered == USERS
        for user in users:
            await user.client.aclose()
