"""A caption crosses to the worker pool twice (decode, then retrieval + prompt + grounding names)
with one database session for the latter, and reads no vector it does not use."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from tests.helpers import images
from tests.helpers.api import UserClient, caption, create


async def test_one_hand_off_and_one_session_before_the_vlm(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(alice, "bo", images.pattern(1), images.pattern(2))
    await create(alice, "kiki", images.pattern(3))
    await caption(alice, images.pattern(1))  # warm: models loaded, index built
    runtime = app.state.runtime
    runs: list[str] = []
    sessions: list[int] = []
    real_run, real_sessions = runtime.run, runtime.sessions

    async def counting_run(fn: Callable[..., Any], *args: object, **kwargs: object) -> Any:
        runs.append(getattr(fn, "__name__", repr(fn)))
        return await real_run(fn, *args, **kwargs)

    def counting_sessions(*args: object, **kwargs: object) -> Any:
        sessions.append(1)
        return real_sessions(*args, **kwargs)

    monkeypatch.setattr(runtime, "run", counting_run)
    monkeypatch.setattr(runtime, "sessions", counting_sessions)
    resp = await caption(alice, images.pattern(1), top_k=2)
    assert resp.status_code == 200, resp.text
    assert runs == ["decode_query", "_prepare"]
    assert len(sessions) == 2  # the API key's lookup, then the caption's one session


async def test_retrieval_caption_reads_no_vectors(app: FastAPI, alice: UserClient) -> None:
    await create(alice, "bo", images.pattern(1), images.pattern(2))
    await caption(alice, images.pattern(1))  # warm: the index is built (which reads vectors)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    engine = app.state.runtime.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        resp = await caption(alice, images.pattern(1), top_k=2)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert resp.status_code == 200, resp.text
    vector_column = re.compile(r"concept_images\.embedding\b")  # not embedding_dim
    assert statements and not [s for s in statements if vector_column.search(s)]
