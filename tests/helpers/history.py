"""Captions kept through the API, shared by the history and feedback-export tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import api
from tests.helpers.api import UserClient


async def caption(user: UserClient, blob: bytes, **form: str) -> httpx.Response:
    """`POST /caption` of ``blob`` with top-1 retrieval unless ``form`` says otherwise."""
    return await api.caption(user, blob, **{"top_k": "1", **form})


async def kept(user: UserClient, blob: bytes) -> dict[str, Any]:
    """Caption ``blob`` with keep=true; the kept caption."""
    resp = await caption(user, blob, keep="true")
    assert resp.status_code == 200, resp.text
    history_id = resp.json()["history_id"]
    assert history_id is not None
    got = await user.client.get(f"/captions/{history_id}")
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]
