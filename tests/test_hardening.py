"""What fuzzing and careless use found: no 500s, model-safe photos, clean failures, headers."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from app.core.logs import JsonFormatter
from tests.helpers import images
from tests.helpers.api import UserClient, admin_headers, assert_problem, create
from tests.helpers.mounts import read_only


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite unless a test asks for PostgreSQL (`indirect` parametrisation)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'repic.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 200 if mode == "L" else (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def photo(data: bytes, field: str = "image") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, ("q.png", data, "image/png"))]


# -- defect 2: 500s -------------------------------------------------------------------------


async def test_ids_and_offsets_beyond_64_bits_are_422(alice: UserClient) -> None:
    huge = str(2**64)
    assert_problem(await alice.client.get(f"/concepts?offset={huge}"), 422, "validation-error")
    resp = await alice.client.post(
        "/caption", data={"concept_ids": huge}, files=photo(images.pattern(1))
    )
    assert_problem(resp, 422, "validation-error")
    last = await alice.client.get(f"/concepts?offset={2**63 - 1}")
    assert last.status_code == 200 and last.json()["data"] == []


async def test_query_photo_with_a_side_over_65535_pixels(alice: UserClient) -> None:
    assert (await create(alice, "bo", images.pattern(1))).status_code == 201
    resp = await alice.client.post("/retrieve", files=photo(png((70_000, 400), "L")))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_nul_in_info_or_category_is_422_on_postgres(
    alice: UserClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my-private-note"
    resp = await create(alice, "bo", images.pattern(1), info=f"{secret}\x00")
    assert_problem(resp, 422, "validation-error")
    resp = await create(alice, "bo", images.pattern(1), category="dog\x00")
    assert_problem(resp, 422, "validation-error")
    made = (await create(alice, "bo", images.pattern(1))).json()
    patched = await alice.client.patch(f"/concepts/{made['id']}", json={"info": f"{secret}\x00"})
    assert_problem(patched, 422, "validation-error")
    assert secret not in caplog.text
    assert (await alice.client.get(f"/concepts/{made['id']}")).json()["info"] == "a corgi"


async def test_delete_with_read_only_storage_answers_204(
    app: FastAPI, alice: UserClient, tmp_path: Path
) -> None:
    made = (await create(alice, "bo", images.pattern(1))).json()
    runtime = app.state.runtime
    blob_dir, index_dir = runtime.settings.blob_dir, runtime.settings.index_dir
    index_dir.mkdir(parents=True, exist_ok=True)
    with read_only(blob_dir), read_only(index_dir):
        resp = await alice.client.delete(f"/concepts/{made['id']}")
        assert resp.status_code == 204, resp.text
    assert (await alice.client.get(f"/concepts/{made['id']}")).status_code == 404


# -- defect 3: photos the model cannot take ------------------------------------------------


@pytest.mark.parametrize(
    "size", [(1, 39_000), (300, 1), (30, 7_000), (10, 10)], ids=["1x39000", "300x1", "233:1", "10"]
)
async def test_photos_the_model_cannot_take_are_refused(
    alice: UserClient, size: tuple[int, int]
) -> None:
    body = assert_problem(await create(alice, "bo", png(size, "L")), 422, "image-shape")
    assert "captioning model" in str(body["detail"])
    resp = await alice.client.post("/caption", files=photo(png(size, "L")))
    assert_problem(resp, 422, "image-shape")
    assert (await alice.client.get("/concepts")).json()["count"] == 0


async def test_elongated_reference_keeps_a_usable_short_side(alice: UserClient) -> None:
    made = await create(alice, "bo", png((7_000, 40), "L"))
    assert made.status_code == 201, made.text
    stored = made.json()["images"][0]
    assert min(stored["width"], stored["height"]) >= 14
    assert max(stored["width"], stored["height"]) <= 200 * min(stored["width"], stored["height"])


# -- defect 4: the 500 answer itself ------------------------------------------------------


async def test_unhandled_error_answers_500_with_request_id_and_close(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.concepts import ConceptService

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ConceptService, "page", broken)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        resp = await alice.client.get("/concepts", headers={"X-Request-ID": "req-500-test"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert_problem(resp, 500, "internal-error")
    assert resp.headers["x-request-id"] == "req-500-test"
    assert resp.headers["connection"] == "close"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    traceback = [line for line in lines if "exc" in line]
    assert traceback and traceback[0]["request_id"] == "req-500-test"


# -- defect 7: headers and exposure ---------------------------------------------------------


async def test_security_headers(alice: UserClient) -> None:
    made = (await create(alice, "bo", images.pattern(1))).json()
    listing = await alice.client.get("/concepts")
    assert listing.headers["x-content-type-options"] == "nosniff"
    assert listing.headers["cache-control"] == "no-store"
    image = await alice.client.get(f"/concepts/{made['id']}/images/{made['images'][0]['id']}")
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["cache-control"].startswith("private")
    missing = await alice.client.get("/concepts/999")
    assert missing.headers["cache-control"] == "no-store"


async def test_readyz_details_only_for_the_admin(anon: httpx.AsyncClient, settings: object) -> None:
    public = (await anon.get("/readyz")).text
    assert "sqlite" not in public and "revision" not in public and "/" not in public
    detailed = (await anon.get("/readyz", headers=admin_headers())).json()
    assert "schema revision" in detailed["components"]["database"]["detail"]


async def test_readyz_reports_reindex_required(
    app: FastAPI, anon: httpx.AsyncClient, alice: UserClient
) -> None:
    from sqlalchemy import text

    assert (await create(alice, "bo", images.pattern(1))).status_code == 201
    with app.state.runtime.engine.begin() as conn:
        conn.execute(text("UPDATE concept_images SET embedder_id = 'open_clip:older-model'"))
    ready = await anon.get("/readyz", headers=admin_headers())
    assert ready.status_code == 503
    assert "repic reindex" in ready.json()["components"]["index"]["detail"]


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": "metrics-secret"}])
async def test_metrics_behind_a_token(anon: httpx.AsyncClient) -> None:
    assert_problem(await anon.get("/metrics"), 401, "unauthorized")
    ok = await anon.get("/metrics", headers={"Authorization": "Bearer metrics-secret"})
    assert ok.status_code == 200 and "repic_http_requests" in ok.text


async def test_405_lists_every_allowed_method(alice: UserClient) -> None:
    resp = await alice.client.post("/concepts/1")
    assert_problem(resp, 405, "method-not-allowed")
    assert {"GET", "PATCH", "DELETE"} <= {m.strip() for m in resp.headers["allow"].split(",")}


async def test_repeated_form_fields_are_422(alice: UserClient) -> None:
    resp = await alice.client.post(
        "/concepts",
        data={"name": ["bo", "max"], "info": "x"},
        files=[("images", ("a.jpg", images.pattern(1), "image/jpeg"))],
    )
    assert_problem(resp, 422, "repeated-field")
    two_images = photo(images.pattern(1)) + photo(images.pattern(2))
    assert_problem(await alice.client.post("/caption", files=two_images), 422, "repeated-field")
    assert (await alice.client.get("/concepts")).json()["count"] == 0


# -- defect 8: correctness seen by users ----------------------------------------------------


async def test_ids_are_never_reused(alice: UserClient) -> None:
    first = (await create(alice, "bo", images.pattern(1))).json()
    second = (await create(alice, "max", images.pattern(2))).json()
    assert (await alice.client.delete(f"/concepts/{second['id']}")).status_code == 204
    third = (await create(alice, "rex", images.pattern(3))).json()
    assert third["id"] > second["id"] > first["id"]
    assert third["images"][0]["id"] > second["images"][0]["id"]


async def test_user_names_are_case_insensitive(anon: httpx.AsyncClient) -> None:
    assert (
        await anon.post("/admin/users", json={"name": "Alice"}, headers=admin_headers())
    ).is_success
    again = await anon.post("/admin/users", json={"name": "alice"}, headers=admin_headers())
    assert_problem(again, 409, "user-exists")
    keys = await anon.get("/admin/users/ALICE/keys", headers=admin_headers())
    assert keys.status_code == 200 and keys.json()["count"] == 1


async def test_patch_null_clears_and_name_cannot_be_null(alice: UserClient) -> None:
    made = (await create(alice, "bo", images.pattern(1), category="dog")).json()
    url = f"/concepts/{made['id']}"
    cleared = (await alice.client.patch(url, json={"info": None, "category": None})).json()
    assert cleared["info"] == "" and cleared["category"] is None
    assert_problem(await alice.client.patch(url, json={"name": None}), 422, "validation-error")
    assert (await alice.client.get(url)).json()["name"] == "bo"


async def test_if_none_match_gives_304(alice: UserClient) -> None:
    made = (await create(alice, "bo", images.pattern(1))).json()
    url = f"/concepts/{made['id']}/images/{made['images'][0]['id']}"
    first = await alice.client.get(url)
    again = await alice.client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = await alice.client.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize("settings_overrides", [{"retrieval": {"min_score": -1.0}}])
async def test_retrieval_scores_never_exceed_one(alice: UserClient) -> None:
    # Photos queried against themselves: float32 cosines of identical unit vectors land on
    # 1.0000001 for some of these (before the clamp).
    for seed in range(12):
        assert (await create(alice, f"c{seed}", images.pattern(seed))).status_code == 201
    for seed in range(12):
        resp = await alice.client.post("/retrieve", files=photo(images.pattern(seed)))
        assert all(-1.0 <= m["score"] <= 1.0 for m in resp.json()["data"]), resp.text


async def test_caption_model_is_a_name_not_a_server_path(
    alice: UserClient, tiny_qwen_dir: Path
) -> None:
    made = (await create(alice, "bo", images.pattern(1))).json()
    resp = await alice.client.post(
        "/caption", data={"concept_ids": str(made["id"])}, files=photo(images.pattern(1))
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == tiny_qwen_dir.name
