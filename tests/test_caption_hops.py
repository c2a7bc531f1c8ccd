"""A caption crosses to the worker pool twice (decode, then retrieval + prompt + grounding names)
with one database session for the latter, and reads no vector it does not use. Around it, the
framework hands off to its thread pool once (the API key's lookup), and that lookup is one query."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import fastapi.dependencies.utils
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
        # The caption job worker's poll may open one meanwhile; it is not the request's.
        if not any(f.filename.endswith("job_runner.py") for f in traceback.extract_stack()):
            sessions.append(1)
        return real_sessions(*args, **kwargs)

    monkeypatch.setattr(runtime, "run", counting_run)
    monkeypatch.setattr(runtime, "sessions", counting_sessions)
    resp = await caption(alice, images.pattern(1), top_k=2)
    assert resp.status_code == 200, resp.text
    # The caption job worker's poll ("claim") may cross meanwhile; it is not the request's.
    assert [r for r in runs if r != "claim"] == ["decode_query", "_prepare"]
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


async def test_one_framework_hand_off_per_caption(
    alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(alice, "bo", images.pattern(1))
    await caption(alice, images.pattern(1))  # warm
    calls: list[str] = []
    real = fastapi.dependencies.utils.run_in_threadpool

    async def counting(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(fastapi.dependencies.utils, "run_in_threadpool", counting)
    resp = await caption(alice, images.pattern(1), top_k=1)
    assert resp.status_code == 200, resp.text
    assert calls == ["current_user"]  # the runtime dependency runs on the event loop


async def test_api_key_lookup_is_one_query(app: FastAPI, alice: UserClient) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    engine = app.state.runtime.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        resp = await alice.client.get("/concepts")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert resp.status_code == 200, resp.text
    user_rows = [s for s in statements if re.search(r"\busers(_\d+)?\.name\b", s)]
    assert len(user_rows) == 1 and "api_keys" in user_rows[0], statements
