"""`POST /retrieve` end to end through the real (tiny) CLIP, FAISS and the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.settings import Settings
from app.main import create_app
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create, retrieve


async def test_same_image_retrieves_its_concept_first(alice: UserClient) -> None:
    ids = {}
    for seed, name in enumerate(["bo", "thao", "rex"]):
        ids[name] = (await create(alice, name, images.pattern(seed * 10))).json()["id"]
    resp = await retrieve(alice, images.pattern(10))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    top = body["data"][0]
    assert top["concept"] == {"id": ids["thao"], "name": "thao"}
    assert top["score"] == pytest.approx(1.0, abs=1e-3)
    assert top["box"][:2] == [0, 0]  # the whole image matched
    assert len(body["data"]) == 2 and body["data"][1]["concept"]["name"] != "thao"
    assert {"decode", "embed", "search", "total"} <= set(body["timings_ms"])


async def test_best_reference_image_is_reported(alice: UserClient) -> None:
    created = (await create(alice, "bo", images.pattern(1), images.pattern(2))).json()
    second = created["images"][1]["id"]
    top = (await retrieve(alice, images.pattern(2), top_k=1)).json()["data"][0]
    assert top["image_id"] == second


async def test_min_score_floor_drops_weak_hits(alice: UserClient) -> None:
    await create(alice, "bo", images.pattern(1))
    await create(alice, "thao", images.pattern(50))
    data = (await retrieve(alice, images.pattern(1), min_score=0.9999)).json()["data"]
    assert [d["concept"]["name"] for d in data] == ["bo"]


async def test_top_k_bounds(alice: UserClient) -> None:
    assert_problem(await retrieve(alice, images.pattern(1), top_k=9), 422, "validation-error")
    assert_problem(await retrieve(alice, images.pattern(1), top_k=0), 422, "validation-error")


async def test_user_without_concepts_gets_nothing(alice: UserClient) -> None:
    resp = await retrieve(alice, images.pattern(1))
    assert resp.status_code == 200 and resp.json()["data"] == []


async def test_bad_query_image(alice: UserClient) -> None:
    assert_problem(await retrieve(alice, b"text"), 415, "unsupported-image-type")


async def test_deleted_concept_is_never_retrieved(alice: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    await create(alice, "thao", images.pattern(2))
    assert (await alice.client.delete(f"/concepts/{bo['id']}")).status_code == 204
    names = [
        d["concept"]["name"]
        for d in (await retrieve(alice, images.pattern(1), top_k=8)).json()["data"]
    ]
    assert names == ["thao"]


async def test_deleted_image_is_never_retrieved(alice: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1), images.pattern(2))).json()
    first = bo["images"][0]["id"]
    await alice.client.delete(f"/concepts/{bo['id']}/images/{first}")
    top = (await retrieve(alice, images.pattern(1), top_k=1)).json()["data"][0]
    assert top["image_id"] == bo["images"][1]["id"]


async def test_added_image_is_retrieved(alice: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    added = (
        await alice.client.post(
            f"/concepts/{bo['id']}/images",
            files=[("images", ("x.jpg", images.pattern(33), "image/jpeg"))],
        )
    ).json()
    top = (await retrieve(alice, images.pattern(33), top_k=1)).json()["data"][0]
    assert top["image_id"] == added["images"][1]["id"]
    assert top["score"] == pytest.approx(1.0, abs=1e-3)


async def test_users_never_see_each_others_vectors(alice: UserClient, bob: UserClient) -> None:
    await create(alice, "bo", images.pattern(1))
    await create(bob, "rex", images.pattern(2))
    alice_sees = (await retrieve(alice, images.pattern(2), top_k=8)).json()["data"]
    bob_sees = (await retrieve(bob, images.pattern(1), top_k=8)).json()["data"]
    assert [d["concept"]["name"] for d in alice_sees] == ["bo"]
    assert [d["concept"]["name"] for d in bob_sees] == ["rex"]


async def test_embedder_failure_stores_nothing(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.embedder import EmbedderUnavailable

    def broken(*_: object, **__: object) -> None:
        raise EmbedderUnavailable("weights missing: set REPIC_EMBEDDER__PRETRAINED")

    monkeypatch.setattr(app.state.runtime.embedder, "embed", broken)
    body = assert_problem(await create(alice, "bo"), 503, "embedder-unavailable")
    assert "REPIC_EMBEDDER__PRETRAINED" in str(body["detail"])
    monkeypatch.undo()
    assert (await alice.client.get("/concepts")).json()["count"] == 0
    assert list(app.state.runtime.blobs.root.rglob("*.jpg")) == []


async def test_missing_weights_are_reported_by_readyz(settings: Settings, tmp_path: Path) -> None:
    from app.core.migrate import upgrade

    upgrade(settings.database_url)
    broken = settings.model_copy(
        update={
            "embedder": settings.embedder.model_copy(
                update={"pretrained": str(tmp_path / "missing.safetensors")}
            )
        }
    )
    application = create_app(broken)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.get("/readyz", headers=admin_headers())
    assert resp.status_code == 503
    embedder = resp.json()["components"]["embedder"]
    assert embedder["ready"] is False and "missing.safetensors" in embedder["detail"]


async def retrieve_after_restart(
    settings: Settings, user: UserClient, seed: int, *, top_k: int
) -> list[dict[str, object]]:
    """POST /retrieve on a freshly started app (new process state, same database and files)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"X-API-Key": user.key}
        ) as client:
            resp = await client.post(
                "/retrieve",
                files={"image": ("q.jpg", images.pattern(seed), "image/jpeg")},
                data={"top_k": str(top_k), "min_score": "-1"},
            )
    data: list[dict[str, object]] = resp.json()["data"]
    return data


async def test_index_survives_restart_and_rebuilds_from_database(
    app: FastAPI, alice: UserClient, settings: Settings
) -> None:
    for seed, name in enumerate(["bo", "thao", "rex", "kiki"]):
        await create(alice, name, images.pattern(seed * 7))
    before = (await retrieve(alice, images.pattern(7), top_k=4)).json()["data"]
    index_dir = settings.index_dir
    assert list(index_dir.glob("user_*.idx"))

    assert await retrieve_after_restart(settings, alice, 7, top_k=4) == before  # saved files
    for f in index_dir.iterdir():
        f.unlink()
    assert await retrieve_after_restart(settings, alice, 7, top_k=4) == before  # rebuilt
    assert list(index_dir.glob("user_*.idx"))


async def test_crash_between_commit_and_index_write_is_repaired(
    app: FastAPI, alice: UserClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(alice, "bo", images.pattern(1))
    await retrieve(alice, images.pattern(1))  # index saved at the current version
    index = app.state.runtime.vectors.index()

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("simulated crash after the database commit")

    monkeypatch.setattr(index, "add", crash)
    thao = await create(alice, "thao", images.pattern(2))
    assert thao.status_code == 201  # committed; the index write 'crashed'
    monkeypatch.undo()

    # A restart: only the stale index files and the database are left.
    data = await retrieve_after_restart(settings, alice, 2, top_k=1)
    assert data[0]["concept"] == {"id": thao.json()["id"], "name": "thao"}


async def test_concurrent_uploads_and_searches(alice: UserClient) -> None:
    async def upload(i: int) -> int:
        resp = await create(alice, f"c{i}", images.pattern(100 + i))
        assert resp.status_code == 201, resp.text
        return int(resp.json()["id"])

    async def search(i: int) -> None:
        resp = await retrieve(alice, images.pattern(100 + i), top_k=1)
        assert resp.status_code == 200, resp.text

    created = await asyncio.gather(*(upload(i) for i in range(8)), *(search(i) for i in range(8)))
    ids = [c for c in created if c is not None]
    assert len(ids) == 8
    for i in range(8):
        top = (await retrieve(alice, images.pattern(100 + i), top_k=1)).json()["data"][0]
        assert top["concept"]["name"] == f"c{i}"
