"""Per-user quotas, rate limits and fair turns at the model (defect 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.quotas import CaptionSlots, FairGate, RateLimiter
from app.services.errors import TooMany
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


@pytest.mark.parametrize("settings_overrides", [{"quota": {"concepts": 2, "photos": 3}}])
async def test_concept_and_photo_quotas(alice: UserClient, bob: UserClient) -> None:
    assert (await create(alice, "a", images.pattern(1), images.pattern(2))).status_code == 201
    over_photos = await create(alice, "b", images.pattern(3), images.pattern(4))
    assert_problem(over_photos, 409, "quota-exceeded")
    assert (await create(alice, "b", images.pattern(3))).status_code == 201
    assert_problem(await create(alice, "c", images.pattern(5)), 409, "quota-exceeded")
    assert (await alice.client.get("/concepts")).json()["count"] == 2
    assert (await create(bob, "c", images.pattern(5))).status_code == 201  # per user


async def test_stored_bytes_quota(alice: UserClient, app: FastAPI) -> None:
    made = (await create(alice, "a", images.pattern(1))).json()
    settings = app.state.runtime.settings
    sha = made["images"][0]["sha256"]
    stored = (settings.blob_dir / sha[:2] / f"{sha}.jpg").stat().st_size
    settings.quota.stored_bytes = stored + 10
    more = [("images", ("b.jpg", images.pattern(2), "image/jpeg"))]
    resp = await alice.client.post(f"/concepts/{made['id']}/images", files=more)
    assert_problem(resp, 409, "quota-exceeded")
    assert len((await alice.client.get(f"/concepts/{made['id']}")).json()["images"]) == 1


@pytest.mark.parametrize("settings_overrides", [{"quota": {"api_keys": 2}}])
async def test_api_key_quota(anon: httpx.AsyncClient, alice: UserClient) -> None:
    url = "/admin/users/alice/keys"
    assert (await anon.post(url, headers=admin_headers())).status_code == 201
    assert_problem(await anon.post(url, headers=admin_headers()), 409, "quota-exceeded")


@pytest.mark.parametrize(
    "settings_overrides", [{"quota": {"requests_per_minute": 60, "request_burst": 3}}]
)
async def test_request_rate_per_user(alice: UserClient, bob: UserClient) -> None:
    statuses = [(await alice.client.get("/concepts")).status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    limited = await alice.client.get("/concepts")
    assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    assert (await bob.client.get("/concepts")).status_code == 200  # bob is not limited


async def test_one_photo_routes_have_a_one_photo_body_cap(alice: UserClient, app: FastAPI) -> None:
    max_bytes = app.state.runtime.settings.upload.max_bytes
    resp = await alice.client.post(
        "/caption",
        content=b"x",
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(2 * max_bytes),
        },
    )
    assert_problem(resp, 413, "body-too-large")


@pytest.mark.parametrize("settings_overrides", [{"upload": {"max_request_pixels": 2 * 96 * 72}}])
async def test_decoded_pixels_per_request(alice: UserClient) -> None:
    two = await create(alice, "a", images.pattern(1), images.pattern(2))
    assert two.status_code == 201
    three = await create(alice, "b", images.pattern(3), images.pattern(4), images.pattern(5))
    assert_problem(three, 413, "request-too-many-pixels")


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(per_minute=6000, burst=1)
    limiter.check(1)
    with pytest.raises(TooMany) as refused:
        limiter.check(1)
    assert refused.value.retry_after_s == 1
    limiter.check(2)


async def test_caption_slots_refuse_beyond_the_per_user_limit() -> None:
    slots = CaptionSlots(per_user=2)
    async with slots.hold(1), slots.hold(1):
        with pytest.raises(TooMany) as refused:
            async with slots.hold(1):
                pass
        assert refused.value.kind == "rate-limited"
        async with slots.hold(2):
            pass
    async with slots.hold(1):
        pass


async def test_fair_gate_serves_a_lone_user_before_a_bursting_one() -> None:
    gate = FairGate(capacity=1)
    order: list[str] = []
    release = asyncio.Event()

    async def job(user: int, label: str) -> None:
        async with gate.turn(user):
            order.append(label)
            await release.wait()

    burst = [asyncio.create_task(job(1, f"a{i}")) for i in range(4)]
    await asyncio.sleep(0)
    lone = asyncio.create_task(job(2, "b"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*burst, lone)
    assert order[:2] == ["a0", "b"], order


async def test_fair_gate_survives_cancelled_waiters() -> None:
    gate = FairGate(capacity=1)
    hold = asyncio.Event()

    async def job(user: int) -> None:
        async with gate.turn(user):
            await hold.wait()

    first = asyncio.create_task(job(1))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(job(2))
    await asyncio.sleep(0)
    waiter.cancel()
    hold.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(job(3), 1)  # the turn came back


def test_evaluation_client_waits_out_a_429() -> None:
    from evaluation.client import ServiceClient

    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return next(answers)

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://svc")
    response = ServiceClient(http, "key")._send("GET", "/concepts")
    assert response.status_code == 200 and seen == ["/concepts", "/concepts"]
