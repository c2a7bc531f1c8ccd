"""OpenAIBackend against a real vLLM OpenAI-compatible server (CPU build, tiny Qwen2.5-VL)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from model.prompt import Demo, RepicPrompt, build_repic_messages
from model.vlm.base import VLMBadRequest, VLMUnavailable
from model.vlm.messages import count_prompt_tokens
from model.vlm.openai_backend import OpenAIBackend, to_openai_messages
from tests.helpers.qwen import (
    demos,
    solid_image,
    with_pixel_budget,
)
from tests.helpers.vllm import VLLMServer

pytestmark = pytest.mark.vllm


def _backend(server: VLLMServer, **overrides: Any) -> OpenAIBackend:
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": server.api_key,
        "timeout_s": 120.0,
        **overrides,
    }
    model = options.pop("model", server.model_name)
    return OpenAIBackend(model, **options)


@pytest.fixture
async def backend(vllm_server: VLLMServer) -> AsyncIterator[OpenAIBackend]:
    client = _backend(vllm_server)
    yield client
    await client.aclose()


def _query_prompt(demo_count: int) -> RepicPrompt:
    # The query is larger than the server's pixel budget and is not downscaled here: the
    # server's --mm-processor-kwargs max_pixels must do it.
    return build_repic_messages(demos(demo_count), solid_image(640, 480, (30, 90, 150)))


def _metric(server: VLLMServer, name: str) -> float:
    text = httpx.get(f"{server.root_url}/metrics", timeout=10).text
    values = re.findall(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, flags=re.MULTILINE)
    assert values, f"{name} not in /metrics"
    return sum(float(v) for v in values)


async def test_readiness_reports_the_served_model(
    backend: OpenAIBackend,
    vllm_server: VLLMServer,
) -> None:
    readiness = await backend.areadiness()
    assert readiness.ready, readiness.detail
    assert vllm_server.model_name in readiness.detail


async def test_readiness_names_what_the_server_serves_when_our_model_is_missing(
    vllm_server: VLLMServer,
) -> None:
    backend = _backend(vllm_server, model="Yeongtak/RePIC_Qwen2.5VL_7B")
    readiness = await backend.areadiness()
    with pytest.raises(VLMUnavailable, match="does not serve"):
        await backend.generate(_query_prompt(1), max_tokens=4, cache_salt="u")
    await backend.aclose()
    assert not readiness.ready
    assert vllm_server.model_name in readiness.detail


async def test_a_wrong_api_key_is_reported_as_such(vllm_server: VLLMServer) -> None:
    backend = _backend(vllm_server, api_key="not-the-key")
    readiness = await backend.areadiness()
    with pytest.raises(VLMUnavailable, match="rejected the API key"):
        await backend.generate(_query_prompt(1), max_tokens=4, cache_salt="u")
    await backend.aclose()
    assert not readiness.ready
    assert "rejected the API key" in readiness.detail


async def test_four_demos_and_a_query_are_captioned(backend: OpenAIBackend) -> None:
    generation = await backend.generate(_query_prompt(4), max_tokens=12, cache_salt="user-1")

    assert isinstance(generation.text, str)
    assert generation.model == backend.model_name
    assert generation.completion_tokens is not None
    assert 1 <= generation.completion_tokens <= 12


async def test_prompt_tokens_match_the_hf_processor_with_the_same_pixel_budget(
    backend: OpenAIBackend,
    vllm_server: VLLMServer,
    tiny_qwen_processor: Any,
) -> None:
    prompt = _query_prompt(4)
    generation = await backend.generate(prompt, max_tokens=2, cache_salt="user-1")

    budgeted = with_pixel_budget(tiny_qwen_processor, vllm_server.max_pixels)
    assert generation.prompt_tokens == count_prompt_tokens(prompt, budgeted)
    # The budget took effect: the 640x480 query alone would cost more without it.
    assert generation.prompt_tokens < count_prompt_tokens(prompt, tiny_qwen_processor)


async def test_more_images_than_the_server_allows_is_a_bad_request(
    backend: OpenAIBackend,
    vllm_server: VLLMServer,
) -> None:
    too_many = [
        Demo(name=f"c{i}", info="", image=solid_image(56, 56, (i, i, i)))
        for i in range(vllm_server.max_images)
    ]
    prompt = build_repic_messages(too_many, solid_image(56, 56, (9, 9, 9)))
    with pytest.raises(VLMBadRequest, match="HTTP 400"):
        await backend.generate(prompt, max_tokens=4, cache_salt="u")


async def test_a_prompt_longer_than_the_model_length_is_a_bad_request(
    backend: OpenAIBackend,
) -> None:
    long_info = " ".join(f"word{i}" for i in range(3000))
    prompt = build_repic_messages(
        [Demo(name="bo", info=long_info, image=solid_image(56, 56, (1, 1, 1)))],
        solid_image(56, 56, (2, 2, 2)),
    )
    with pytest.raises(VLMBadRequest, match="HTTP 400"):
        await backend.generate(prompt, max_tokens=4, cache_salt="u")


async def test_cache_salt_keeps_prefix_cache_hits_within_one_user(
    backend: OpenAIBackend,
    vllm_server: VLLMServer,
) -> None:
    # Images of its own, so no other test has cached this prompt, and large enough (about 400
    # tokens) to fill whole KV-cache blocks, the unit prefix caching shares.
    prompt = build_repic_messages(
        [
            Demo(name=f"s{i}", info="salted", image=solid_image(224, 224, (7, i, 200)))
            for i in range(3)
        ],
        solid_image(448, 448, (250, 7, 7)),
    )

    async def hits_of(salt: str) -> tuple[float, str]:
        before = _metric(vllm_server, "vllm:prefix_cache_hits_total")
        generation = await backend.generate(prompt, max_tokens=6, cache_salt=salt)
        return _metric(vllm_server, "vllm:prefix_cache_hits_total") - before, generation.text

    first_hits, first_text = await hits_of("alice")
    again_hits, again_text = await hits_of("alice")
    other_hits, other_text = await hits_of("bob")

    assert first_hits == 0
    assert again_hits > 0  # alice's second request reuses her cached prefix
    assert other_hits == 0  # bob's identical request cannot reuse alice's blocks
    assert first_text == again_text == other_text  # greedy decoding, whatever the cache


async def test_vllm_reads_the_image_uuid_where_the_backend_puts_it(
    vllm_server: VLLMServer,
) -> None:
    # vLLM trusts a uuid it has seen: the same uuid on a different (larger) image is served
    # from its cache of processed images, so the prompt keeps the first image's token count.
    # Were the uuid misplaced, vLLM would hash the new bytes and count more image tokens.
    small = build_repic_messages([], solid_image(56, 56, (3, 33, 133)))
    large = build_repic_messages([], solid_image(448, 448, (3, 33, 133)))
    small_messages = to_openai_messages(small)
    relabelled = to_openai_messages(large)
    relabelled[1]["content"][0]["uuid"] = small_messages[1]["content"][0]["uuid"]

    async with AsyncOpenAI(
        base_url=vllm_server.base_url, api_key=vllm_server.api_key, max_retries=0
    ) as client:

        async def prompt_tokens(messages: list[dict[str, Any]]) -> int:
            completion = await client.chat.completions.create(
                model=vllm_server.model_name,
                messages=messages,  # type: ignore[arg-type]
                max_completion_tokens=1,
            )
            assert completion.usage is not None
            return completion.usage.prompt_tokens

        small_tokens = await prompt_tokens(small_messages)
        large_tokens = await prompt_tokens(to_openai_messages(large))
        relabelled_tokens = await prompt_tokens(relabelled)

    assert large_tokens > small_tokens
    assert relabelled_tokens == small_tokens


async def test_concurrent_requests_all_complete(vllm_server: VLLMServer) -> None:
    backend = _backend(vllm_server, max_concurrency=2)
    generations = await asyncio.gather(
        *(
            backend.generate(_query_prompt(i % 3), max_tokens=4, cache_salt=f"u{i}")
            for i in range(5)
        )
    )
    await backend.aclose()
    assert len(generations) == 5
    assert all(g.completion_tokens and g.model == vllm_server.model_name for g in generations)


# A server stopped mid-request: tests/test_caption_vllm.py::TestWhenTheServerStops (one own
# server for the backend's and the service's view of it).
