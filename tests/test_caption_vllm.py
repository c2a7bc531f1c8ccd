"""`POST /caption` through the service with the openai backend, against a real vLLM server (CPU
build, tiny random-weight Qwen2.5-VL): the configuration a deployment runs.

SQLite only: the database paths are covered elsewhere, and every vLLM start costs about a minute.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi import FastAPI

from model.prompt import build_repic_messages
from model.vlm.base import VLMUnavailable
from model.vlm.openai_backend import OpenAIBackend
from tests.helpers import images
from tests.helpers.api import UserClient, assert_problem, caption, create
from tests.helpers.qwen import demos, solid_image
from tests.helpers.vllm import VLLMServer

pytestmark = pytest.mark.vllm


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


@pytest.fixture
def vlm_server(vllm_server: VLLMServer) -> VLLMServer:
    """The server the app under test captions with; the session's unless a test overrides it."""
    return vllm_server


@pytest.fixture
def settings_overrides(vlm_server: VLLMServer) -> dict[str, object]:
    # The whole group is replaced: the shared fixture configures the transformers backend.
    return {
        "vlm": {
            "backend": "openai",
            "model": vlm_server.model_name,
            "base_url": vlm_server.base_url,
            "api_key": vlm_server.api_key,
            "max_tokens": 8,
            "max_pixels": vlm_server.max_pixels,
            "demo_max_pixels": vlm_server.max_pixels,
            "timeout_s": 120.0,
        }
    }


async def test_caption_with_two_retrieved_concepts(
    alice: UserClient,
    vlm_server: VLLMServer,
) -> None:
    bo = (await create(alice, "bo", images.pattern(1), info="my corgi")).json()
    thao = (await create(alice, "thao", images.pattern(2), info="my friend")).json()

    resp = await caption(alice, images.pattern(1), top_k="2")

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["caption"]  # random weights: any text, often only newlines
    assert body["model"] == vlm_server.model_name
    used = body["concepts_used"]
    assert [c["id"] for c in used] == [bo["id"], thao["id"]]
    assert used[0]["score"] == pytest.approx(1, abs=1e-3)
    assert body["timings_ms"]["vlm"] > 0


@pytest.mark.stops_vllm(order=2)
class TestWhenTheServerStops:
    """The session's server (every vLLM start costs about a minute), stopped while a long request
    is in flight: the backend reports it unavailable, and so does the service. The marker makes
    this the last test of the session to use that server."""

    @pytest.mark.slow
    async def test_in_flight_and_later_requests_are_unavailable_and_store_nothing(
        self, app: FastAPI, alice: UserClient, vlm_server: VLLMServer
    ) -> None:
        await create(alice, "bo", images.pattern(1))
        assert (await caption(alice, images.pattern(1))).status_code == 200
        blob_dir = app.state.runtime.settings.blob_dir
        blobs_before = sorted(blob_dir.rglob("*"))

        backend = OpenAIBackend(
            vlm_server.model_name,
            base_url=vlm_server.base_url,
            api_key=vlm_server.api_key,
            timeout_s=120.0,
            connect_retries=1,
        )
        prompt = build_repic_messages(demos(1), solid_image(640, 480, (30, 90, 150)))
        try:
            in_flight = asyncio.create_task(
                backend.generate(prompt, max_tokens=2000, cache_salt="u")
            )
            # 2000 new tokens take the CPU server well over ten seconds; /metrics is no help
            # here, as its gauges refresh only every few seconds.
            await asyncio.sleep(2)
            assert not in_flight.done(), "the long request ended before the server was stopped"
            await asyncio.to_thread(vlm_server.stop)

            # Stopping races with the engine: vLLM ends the request with finish_reason "abort",
            # or answers 500 (engine dead), or leaves it hanging until stop() kills the HTTP
            # server (a reset connection). The caller must see "unavailable" in each case.
            with pytest.raises(VLMUnavailable):
                await in_flight
            with pytest.raises(VLMUnavailable, match="Cannot reach the vLLM server"):
                await backend.generate(prompt, max_tokens=4, cache_salt="u")
            assert not (await backend.areadiness()).ready
        finally:
            await backend.aclose()

        resp = await caption(alice, images.pattern(1))

        body = assert_problem(resp, 503, "vlm-unavailable")
        assert int(resp.headers["retry-after"]) > 0
        assert vlm_server.model_name in str(body["detail"])
        assert (await alice.client.get("/concepts")).json()["count"] == 1
        assert sorted(blob_dir.rglob("*")) == blobs_before
