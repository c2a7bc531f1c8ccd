"""OpenAIBackend's own logic against small local stand-in servers: message layout, retries only
on connection errors, the deadline, error mapping and the concurrency bound. The real-vLLM
behaviour is in test_vlm_openai.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from model.prompt import RepicPrompt, build_repic_messages
from model.vlm.base import VLMBadRequest, VLMTimeout, VLMUnavailable
from model.vlm.openai_backend import OpenAIBackend, server_root, to_openai_messages
from tests.helpers.qwen import demos, solid_image

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "served-name",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "<bo> naps"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 42, "completion_tokens": 3, "total_tokens": 45},
}


def _prompt(demo_count: int = 2) -> RepicPrompt:
    return build_repic_messages(demos(demo_count), solid_image(64, 48, (1, 2, 3)))


@contextlib.asynccontextmanager
async def _local_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return head.decode("latin-1").split(" ")[1], await reader.readexactly(length)


async def _respond(writer: asyncio.StreamWriter, status: str, body: dict[str, object]) -> None:
    data = json.dumps(body).encode()
    writer.write(
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
        f"connection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    writer.close()


def _backend(base_url: str, **kwargs: object) -> OpenAIBackend:
    options: dict[str, object] = {"timeout_s": 10.0, "connect_retries": 0, **kwargs}
    return OpenAIBackend("served-name", base_url=base_url, api_key="k", **options)  # type: ignore[arg-type]


def test_to_openai_messages_interleaves_images_and_texts_in_prompt_order() -> None:
    prompt = _prompt(2)
    messages = to_openai_messages(prompt)

    assert messages[0] == {"role": "system", "content": prompt.system}
    assert messages[1]["role"] == "user"
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"] * 3
    assert parts[1]["text"] == "1. Name: <bo>, Info: a corgi with short legs"
    assert parts[-1]["text"].startswith("This is the query image. ")
    for part, image in zip(parts[::2], prompt.images, strict=True):
        header, _, payload = part["image_url"]["url"].partition(",")
        assert header == "data:image/jpeg;base64"
        assert base64.b64decode(payload) == image.data
        assert part["uuid"] == hashlib.sha256(image.data).hexdigest()


def test_server_root_drops_the_v1_suffix() -> None:
    assert server_root("http://vllm:8001/v1/") == "http://vllm:8001"
    assert server_root("http://gateway/vlm") == "http://gateway/vlm"


async def test_a_completion_becomes_a_generation_with_the_vllm_fields_in_the_body() -> None:
    seen: list[dict[str, object]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path, body = await _read_request(reader)
        seen.append({"path": path, **json.loads(body)})
        await _respond(writer, "200 OK", _COMPLETION)

    async with _local_server(answer) as url:
        backend = _backend(url, repetition_penalty=1.05)
        generation = await backend.generate(_prompt(), max_tokens=17, cache_salt="user-7")
        await backend.aclose()

    assert (generation.text, generation.model) == ("<bo> naps", "served-name")
    assert (generation.prompt_tokens, generation.completion_tokens) == (42, 3)
    [request] = seen
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "served-name"
    assert request["max_completion_tokens"] == 17
    assert request["temperature"] == 0.0
    assert request["repetition_penalty"] == 1.05
    assert request["cache_salt"] == hashlib.sha256(b"user-7").hexdigest()
    assert request["messages"] == to_openai_messages(_prompt())


_ABORTED = {**_COMPLETION, "choices": [{**_COMPLETION["choices"][0], "finish_reason": "abort"}]}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_ABORTED, "aborted the generation"),
        ({"detail": "not a completion"}, "without a chat completion"),
        ({"choices": "none"}, "without a chat completion"),
    ],
)
async def test_an_answer_that_is_no_caption_is_unavailable(
    body: dict[str, object], says: str
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await _respond(writer, "200 OK", body)

    async with _local_server(answer) as url:
        backend = _backend(url)
        with pytest.raises(VLMUnavailable, match=says):
            await backend.generate(_prompt(), max_tokens=4, cache_salt="u")
        await backend.aclose()


async def test_an_empty_cache_salt_is_not_sent() -> None:
    seen: list[dict[str, object]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(json.loads((await _read_request(reader))[1]))
        await _respond(writer, "200 OK", _COMPLETION)

    async with _local_server(answer) as url:
        backend = _backend(url)
        await backend.generate(_prompt(), max_tokens=4, cache_salt="")
        await backend.aclose()
    assert "cache_salt" not in seen[0]


async def test_a_server_that_never_answers_times_out_without_retrying() -> None:
    connections = 0

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # until the client gives up and closes

    async with _local_server(hang) as url:
        backend = _backend(url, timeout_s=0.5, connect_retries=3)
        with pytest.raises(VLMTimeout, match=r"within 0\.5 s"):
            await backend.generate(_prompt(), max_tokens=8, cache_salt="u")
        await backend.aclose()
    assert connections == 1


async def test_dropped_connections_are_retried_then_reported_unavailable() -> None:
    connections = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    async with _local_server(drop) as url:
        backend = _backend(url, connect_retries=2)
        with pytest.raises(VLMUnavailable, match="3 attempts"):
            await backend.generate(_prompt(), max_tokens=8, cache_salt="u")
        await backend.aclose()
    assert connections == 3


async def test_nothing_listening_is_unavailable() -> None:
    async with _local_server(lambda r, w: asyncio.sleep(0)) as url:
        pass  # the port is closed again: connections are refused
    backend = _backend(url, connect_retries=1)
    with pytest.raises(VLMUnavailable, match="Cannot reach the vLLM server"):
        await backend.generate(_prompt(), max_tokens=8, cache_salt="u")
    readiness = await backend.areadiness()
    await backend.aclose()
    assert not readiness.ready
    assert "cannot reach vLLM" in readiness.detail


@pytest.mark.parametrize(
    ("status", "error", "detail"),
    [
        ("503 Service Unavailable", VLMUnavailable, "HTTP 503"),
        ("500 Internal Server Error", VLMUnavailable, "HTTP 500"),
        ("429 Too Many Requests", VLMUnavailable, "HTTP 429"),
        ("401 Unauthorized", VLMUnavailable, "rejected the API key"),
        ("404 Not Found", VLMUnavailable, "does not serve 'served-name'"),
        ("400 Bad Request", VLMBadRequest, "refused the request"),
        ("413 Request Entity Too Large", VLMBadRequest, "HTTP 413"),
    ],
)
async def test_error_statuses_map_to_backend_errors_without_retrying(
    status: str, error: type[Exception], detail: str
) -> None:
    requests = 0

    async def fail(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        await _read_request(reader)
        await _respond(writer, status, {"error": {"message": "no", "code": int(status[:3])}})

    async with _local_server(fail) as url:
        backend = _backend(url, connect_retries=3)
        with pytest.raises(error, match=detail):
            await backend.generate(_prompt(), max_tokens=8, cache_salt="u")
        await backend.aclose()
    assert requests == 1


async def test_no_more_than_max_concurrency_requests_are_in_flight() -> None:
    in_flight = peak = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak
        await _read_request(reader)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        await _respond(writer, "200 OK", _COMPLETION)

    async with _local_server(slow) as url:
        backend = _backend(url, max_concurrency=2)
        results = await asyncio.gather(
            *(backend.generate(_prompt(), max_tokens=4, cache_salt="u") for _ in range(6))
        )
        await backend.aclose()
    assert len(results) == 6
    assert peak == 2


async def test_max_tokens_below_one_is_refused_before_any_request() -> None:
    backend = _backend("http://127.0.0.1:9/v1")
    with pytest.raises(VLMBadRequest, match="max_tokens"):
        await backend.generate(_prompt(), max_tokens=0, cache_salt="u")
    await backend.aclose()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout_s", 0.0),
        ("max_concurrency", 0),
        ("connect_retries", -1),
        ("repetition_penalty", 0),
    ],
)
def test_constructor_refuses_bad_options(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        _backend("http://127.0.0.1:9/v1", **{option: value})
