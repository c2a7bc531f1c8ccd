"""Caption jobs and streaming through the API as deployed (uvicorn) against a real vLLM server
(CPU build, tiny random-weight Qwen2.5-VL)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.jobs import album, parse_events, service_env
from tests.helpers.server import Process, create_users, start_server
from tests.helpers.vllm import VLLMServer

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip: TinyClip,
    vllm_server: VLLMServer,
) -> Iterator[tuple[Process, str]]:
    root = tmp_path_factory.mktemp("jobs-vllm")
    env = service_env(
        root,
        {
            "REPIC_EMBEDDER__MODEL": str(tiny_clip.config_path),
            "REPIC_EMBEDDER__PRETRAINED": str(tiny_clip.checkpoint_path),
            "REPIC_VLM__BACKEND": "openai",
            "REPIC_VLM__MODEL": vllm_server.model_name,
            "REPIC_VLM__BASE_URL": vllm_server.base_url,
            "REPIC_VLM__API_KEY": vllm_server.api_key,
            "REPIC_VLM__MAX_PIXELS": str(vllm_server.max_pixels),
            "REPIC_VLM__DEMO_MAX_PIXELS": str(vllm_server.max_pixels),
            "REPIC_VLM__MAX_TOKENS": "8",
            "REPIC_JOBS__CONCURRENCY": "8",
            "REPIC_JOBS__POLL_S": "0.1",
        },
    )
    key = create_users(env, "alice")["alice"]
    proc = start_server(env, root / "api.log")
    with httpx.Client(base_url=proc.url, headers={"Authorization": f"Bearer {key}"}) as client:
        created = client.post(
            "/concepts",
            # No info: with it, the tiny model's greedy caption of the disconnect test's photo
            # ends early, and that test needs a generation that runs for seconds.
            data={"name": "bo"},
            files={"images": ("bo.jpg", images.pattern(1), "image/jpeg")},
        )
        assert created.status_code == 201, created.text
    try:
        yield proc, key
    finally:
        proc.stop()


@pytest.fixture
def client(api: tuple[Process, str]) -> Iterator[httpx.Client]:
    proc, key = api
    with httpx.Client(
        base_url=proc.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as c:
        yield c


def test_job_of_30_photos_through_vllm(client: httpx.Client) -> None:
    resp = client.post("/caption-jobs", files=album(30), data={"max_tokens": "8"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    deadline = time.monotonic() + 120
    while (body := client.get(f"/caption-jobs/{job_id}").json())["status"] != "done":
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert body["progress"] == {"total": 30, "done": 30, "failed": 0, "running": 0}
    rows = client.get(f"/caption-jobs/{job_id}/results", params={"limit": 100}).json()["data"]
    assert len(rows) == 30
    assert all(r["caption"]["model"] == "tiny-qwen25vl" for r in rows)
    assert all(r["caption"]["concepts_used"][0]["name"] == "bo" for r in rows)


def test_stream_through_vllm_matches_the_plain_caption(client: httpx.Client) -> None:
    form = {"max_tokens": "24"}
    photo = {"image": ("q.jpg", images.pattern(1), "image/jpeg")}
    plain = client.post("/caption", files=photo, data=form)
    assert plain.status_code == 200, plain.text
    resp = client.post("/caption", files=photo, data={**form, "stream": "true"})
    assert resp.status_code == 200, resp.text
    events = parse_events(resp.text)
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    assert len(deltas) > 1
    assert events[-1][0] == "result"
    assert events[-1][1]["caption"] == plain.json()["caption"] == "".join(deltas)
    assert events[-1][1]["concepts_used"][0]["name"] == "bo"


def _metric(vllm: VLLMServer, name: str) -> float:
    """The sum of a vLLM metric over its labels."""
    metrics = httpx.get(f"{vllm.root_url}/metrics", timeout=10).text
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, metrics, re.M))


def _settled(vllm: VLLMServer, name: str, timeout_s: float = 30.0) -> float:
    """``name`` once nothing runs or waits in vLLM and the value held still for a second."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        busy = _metric(vllm, "vllm:num_requests_running") + _metric(
            vllm, "vllm:num_requests_waiting"
        )
        value = _metric(vllm, name)
        if busy == 0 and value == last:
            return value
        assert time.monotonic() < deadline, f"vLLM never settled: {busy} busy, {name}={value}"
        last = value if busy == 0 else None
        time.sleep(1.0)


def test_disconnect_aborts_the_vllm_request(
    client: httpx.Client,
    vllm_server: VLLMServer,
) -> None:
    # On two busy cores (the other test worker runs beside vLLM) the tiny model can write its
    # 1024 tokens before the disconnect reaches vLLM, and such a request ends by itself. So the
    # scenario gets three tries; without the abort, every try ends by itself and the test fails.
    outcomes = []
    for _ in range(3):
        outcomes.append(_disconnect_once(client, vllm_server))
        if outcomes[-1][0]:
            return
    pytest.fail(f"every disconnected request ran to its end in vLLM: {outcomes}")


def _disconnect_once(client: httpx.Client, vllm_server: VLLMServer) -> tuple[bool, str]:
    """Stream a long caption, leave after its first delta: whether vLLM ended it unfinished."""
    # The baseline is taken once vLLM is idle and its counters have settled: the previous test's
    # last request can be counted a moment after its client already had the whole answer.
    finished = _settled(vllm_server, "vllm:request_success_total")
    prompts = _metric(vllm_server, "vllm:prompt_tokens_total")
    photo = {"image": ("q.jpg", images.pattern(2), "image/jpeg")}
    started = time.monotonic()
    with client.stream(
        "POST", "/caption", files=photo, data={"max_tokens": "1024", "stream": "true"}
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert "text" in json.loads(line.removeprefix("data: "))
                break
    # The client went away after its first delta. The request had reached vLLM (its prompt was
    # processed); vLLM counts every request that ends by itself (stop or length) as a success
    # and one whose client went away as none. So once nothing runs, the count must not move.
    assert _metric(vllm_server, "vllm:prompt_tokens_total") > prompts
    deadline = time.monotonic() + 30
    while _metric(vllm_server, "vllm:num_requests_running") > 0:
        assert time.monotonic() < deadline, Path(vllm_server.log_path).read_text()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)
    ended_by_itself = _metric(vllm_server, "vllm:request_success_total") - finished
    return ended_by_itself == 0, f"ran {time.monotonic() - started:.1f} s"
