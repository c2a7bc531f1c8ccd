"""The HTTP API in-process: clients with API keys, the requests most tests make, problem checks,
and a recorder of the prompts that reach the captioning model."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from model.prompt import RepicPrompt
from model.vlm.base import Generation
from tests.helpers import images

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
PROBLEM = "application/problem+json"


@dataclass
class UserClient:
    name: str
    key: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def new_user(anon: httpx.AsyncClient, name: str) -> UserClient:
    """`POST /admin/users`, and a client that sends the new user's key."""
    resp = await anon.post("/admin/users", json={"name": name}, headers=admin_headers())
    assert resp.status_code == 201, resp.text
    key = resp.json()["key"]
    client = httpx.AsyncClient(
        transport=anon._transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )
    return UserClient(name=name, key=key, client=client)


def files(*blobs: bytes, name: str = "photo.jpg") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"{i}-{name}", b, "image/jpeg")) for i, b in enumerate(blobs)]


async def create(
    user: UserClient, name: str = "bo", *blobs: bytes, info: str = "a corgi", **extra: str
) -> httpx.Response:
    data = {"name": name, "info": info, **extra}
    return await user.client.post(
        "/concepts", data=data, files=files(*(blobs or (images.pattern(1),)))
    )


def assert_problem(resp: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["type"] == f"urn:repic:problem:{kind}"
    assert body["status"] == status and body["detail"]
    return body  # type: ignore[no-any-return]


async def caption(user: UserClient, blob: bytes, **form: object) -> httpx.Response:
    data: dict[str, object] = {"min_score": "-1", **{k: v for k, v in form.items()}}
    return await user.client.post(
        "/caption", files={"image": ("q.jpg", blob, "image/jpeg")}, data=data
    )


async def retrieve(
    user: UserClient, blob: bytes, *, top_k: int = 2, min_score: float = -1.0
) -> httpx.Response:
    return await user.client.post(
        "/retrieve",
        files={"image": ("q.jpg", blob, "image/jpeg")},
        data={"top_k": str(top_k), "min_score": str(min_score)},
    )


class Recorder:
    """Wraps the real backend and keeps the prompts it was given."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.prompts: list[RepicPrompt] = []
        self.salts: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def generate(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> Generation:
        self.prompts.append(prompt)
        self.salts.append(cache_salt)
        result: Generation = await self.inner.generate(  # type: ignore[attr-defined]
            prompt, max_tokens=max_tokens, cache_salt=cache_salt
        )
        return result


@pytest.fixture
def recorder(app: FastAPI) -> Recorder:
    """The app's captioning backend, wrapped in a :class:`Recorder`."""
    rec = Recorder(app.state.runtime.vlm)
    app.state.runtime.vlm = rec
    return rec
