"""`POST /caption` with `stream=true` through the in-process transformers backend."""

from __future__ import annotations

import pytest

from tests.helpers import images
from tests.helpers.api import UserClient, assert_problem, caption, create
from tests.helpers.jobs import parse_events


@pytest.fixture
def database_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/repic.db"


async def test_stream_ends_with_the_non_streamed_caption(alice: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1), info="my corgi")).json()
    plain = await caption(alice, images.pattern(1), max_tokens="12")
    assert plain.status_code == 200, plain.text

    resp = await caption(alice, images.pattern(1), max_tokens="12", stream="true")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = parse_events(resp.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"delta"}
    final = events[-1][1]
    # Greedy decoding: the same caption as without streaming, and the deltas spell it out.
    assert final["caption"] == plain.json()["caption"]
    assert "".join(data["text"] for _, data in events[:-1]) == final["caption"]
    assert final["concepts_used"][0]["id"] == bo["id"]
    assert {"decode", "embed", "vlm", "total"} <= set(final["timings_ms"])


async def test_stream_refuses_bad_input_before_streaming(alice: UserClient) -> None:
    resp = await caption(alice, images.truncated_jpeg(), stream="true")
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.status_code == 422
    resp = await caption(alice, images.pattern(1), stream="true", concept_ids="999")
    assert_problem(resp, 404, "not-found")
