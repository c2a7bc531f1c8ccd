"""Derivatives made at upload (demonstration image, thumbnail), their endpoint and command, and
the index's resilience seen through the API (unwritable files, gauges)."""

from __future__ import annotations

import io

import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select, update
from typer.testing import CliRunner

from app.cli import cli
from app.core.blob_gc import sweep_blobs
from app.core.settings import Settings
from model.images import encode_rgb
from store.index_files import IndexFiles
from store.models import ConceptImage
from tests.helpers import images
from tests.helpers.api import Recorder, UserClient, caption, create, retrieve

BIG = (2400, 1800)  # stored at 2048 x 1536 = 3.1 MP, above the 0.8 MP demonstration budget


def rows(app: FastAPI) -> list[ConceptImage]:
    with app.state.runtime.sessions() as session:
        return list(session.scalars(select(ConceptImage).order_by(ConceptImage.id)).all())


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        return img.size


async def test_upload_stores_demo_image_and_thumbnail(app: FastAPI, alice: UserClient) -> None:
    blobs = app.state.runtime.blobs
    await create(alice, "bo", images.pattern(1, size=BIG), images.pattern(2))
    big, small = rows(app)
    budget = app.state.runtime.settings.vlm.demo_max_pixels
    assert (big.width, big.height) == (2048, 1536)
    assert big.prompt_blob_key != big.blob_key and big.prompt_max_pixels == budget
    assert big.prompt_width is not None and big.prompt_height is not None
    assert big.prompt_width * big.prompt_height <= budget
    assert size_of(blobs.get(big.prompt_blob_key)) == (big.prompt_width, big.prompt_height)
    assert big.thumb_blob_key is not None and size_of(blobs.get(big.thumb_blob_key)) == (256, 192)
    # A photo within the budget is its own demonstration image: one blob, not two.
    assert small.prompt_blob_key == small.blob_key
    assert (small.prompt_width, small.prompt_height) == (small.width, small.height)


@pytest.fixture
def embedded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of the photos the service hands to ClipEmbedder to embed, in order (before the
    embedder reduces them to its input size)."""
    from model.embedder import ClipEmbedder

    sizes: list[tuple[int, int]] = []
    real = ClipEmbedder.shrink_to_input

    def spy(self: ClipEmbedder, batch: list[Image.Image]) -> object:
        sizes.extend(img.size for img in batch)
        return real(self, batch)

    monkeypatch.setattr(ClipEmbedder, "shrink_to_input", spy)
    return sizes


async def test_upload_embeds_the_demo_image_not_the_stored_copy(
    app: FastAPI, alice: UserClient, embedded_sizes: list[tuple[int, int]]
) -> None:
    await create(alice, "bo", images.pattern(1, size=BIG), images.pattern(2))
    big, small = rows(app)
    assert embedded_sizes == [(big.prompt_width, big.prompt_height), (small.width, small.height)]
    assert big.prompt_width is not None and big.prompt_width < big.width


def test_reindex_embeds_the_demo_image(
    cli_env: Settings, embedded_sizes: list[tuple[int, int]]
) -> None:
    from app.core import wiring
    from app.core.runtime import build_runtime
    from model.images import normalize_image
    from store.repositories import UserRepository

    runtime = build_runtime(cli_env)
    try:
        with runtime.sessions() as session:
            user = UserRepository(session).by_name("alice")
            assert user is not None
            user_id = user.id
        photo = normalize_image(images.pattern(3, size=BIG), max_pixels=10**8, max_side=2048)
        wiring.concepts(runtime).create(user_id, name="bo", info="", category=None, images=[photo])
        with runtime.sessions() as session:
            session.execute(update(ConceptImage).values(embedder_id="another-embedder"))
            session.commit()
        embedded_sizes.clear()
        result = CliRunner().invoke(cli, ["reindex"])
        assert result.exit_code == 0, result.output
        with runtime.sessions() as session:
            row = session.scalars(select(ConceptImage)).one()
            assert row.embedder_id != "another-embedder"
            assert embedded_sizes == [(row.prompt_width, row.prompt_height)]
    finally:
        runtime.engine.dispose()


async def test_caption_sends_the_stored_demo_image_without_decoding_the_photo(
    app: FastAPI,
    alice: UserClient,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create(alice, "bo", images.pattern(1, size=BIG))
    (row,) = rows(app)
    read: list[str] = []
    blobs = app.state.runtime.blobs
    real_get = blobs.get

    def spy(key: str) -> bytes:
        read.append(key)
        return real_get(key)

    monkeypatch.setattr(blobs, "get", spy)
    resp = await caption(alice, images.pattern(1, size=(640, 480)), top_k=1)
    assert resp.status_code == 200, resp.text
    assert read == [row.prompt_blob_key]
    demo = recorder.prompts[-1].images[0]
    assert demo.data == real_get(row.prompt_blob_key)
    assert (demo.width, demo.height) == (row.prompt_width, row.prompt_height)


async def test_thumbnail_endpoint_with_etag_and_304(app: FastAPI, alice: UserClient) -> None:
    concept = (await create(alice, "bo", images.pattern(1, size=BIG))).json()
    url = f"/concepts/{concept['id']}/images/{concept['images'][0]['id']}/thumbnail"
    resp = await alice.client.get(url)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    assert size_of(resp.content) == (256, 192)
    etag = resp.headers["etag"]
    again = await alice.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = await alice.client.get(url, headers={"If-None-Match": '"not-it"'})
    assert other.status_code == 200


async def test_thumbnail_of_another_users_photo_is_404(alice: UserClient, bob: UserClient) -> None:
    concept = (await create(alice, "bo", images.pattern(1))).json()
    url = f"/concepts/{concept['id']}/images/{concept['images'][0]['id']}/thumbnail"
    assert (await bob.client.get(url)).status_code == 404


async def test_the_sweep_deletes_a_deleted_concepts_derivatives(
    app: FastAPI, alice: UserClient
) -> None:
    concept = (await create(alice, "bo", images.pattern(1, size=BIG))).json()
    (row,) = rows(app)
    keys = [row.blob_key, row.prompt_blob_key, row.thumb_blob_key]
    blobs = app.state.runtime.blobs
    assert all(blobs.exists(k) for k in keys if k)
    assert (await alice.client.delete(f"/concepts/{concept['id']}")).status_code == 204
    # Deletion is the sweep's job (after the grace period), for derivatives as for the photo.
    assert all(blobs.exists(k) for k in keys if k)
    assert sweep_blobs(app.state.runtime, grace_s=0).deleted == len({k for k in keys if k})
    assert not any(blobs.exists(k) for k in keys if k)


def test_derivatives_command_fills_rows_stored_before_them(
    cli_env: Settings,
) -> None:
    from app.core.runtime import build_runtime

    runtime = build_runtime(cli_env)
    try:
        from app.core import wiring
        from model.images import normalize_image

        with runtime.sessions() as session:
            from store.repositories import UserRepository

            user = UserRepository(session).by_name("alice")
            assert user is not None
            user_id = user.id
        photo = normalize_image(images.pattern(3, size=BIG), max_pixels=10**8, max_side=2048)
        wiring.concepts(runtime).create(user_id, name="bo", info="", category=None, images=[photo])
        with runtime.sessions() as session:
            made = session.scalars(select(ConceptImage)).one()
            expected = (made.prompt_width, made.prompt_height, made.prompt_max_pixels)
            session.execute(
                update(ConceptImage).values(
                    prompt_blob_key=None,
                    prompt_width=None,
                    prompt_height=None,
                    prompt_max_pixels=None,
                    thumb_blob_key=None,
                )
            )
            session.commit()
        result = CliRunner().invoke(cli, ["derivatives"])
        assert result.exit_code == 0, result.output
        with runtime.sessions() as session:
            row = session.scalars(select(ConceptImage)).one()
            # Same sizes; the bytes differ slightly, being made from the decoded stored JPEG.
            assert (row.prompt_width, row.prompt_height, row.prompt_max_pixels) == expected
            assert row.prompt_blob_key is not None and row.thumb_blob_key is not None
            assert size_of(runtime.blobs.get(row.prompt_blob_key)) == expected[:2]
            assert size_of(runtime.blobs.get(row.thumb_blob_key)) == (256, 192)
    finally:
        runtime.engine.dispose()


async def test_retrieve_serves_from_memory_when_index_files_cannot_be_written(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied: index directory is read-only")

    monkeypatch.setattr(IndexFiles, "write_base", refuse)
    monkeypatch.setattr(IndexFiles, "append", refuse)
    bo = (await create(alice, "bo", images.pattern(1))).json()
    resp = await retrieve(alice, images.pattern(1), top_k=1)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["concept"]["id"] == bo["id"]


async def test_index_gauges_follow_the_loaded_indexes(app: FastAPI, alice: UserClient) -> None:
    await create(alice, "bo", images.pattern(1), images.pattern(2))
    await create(alice, "kiki", images.pattern(3))
    await retrieve(alice, images.pattern(1))
    body = (await alice.client.get("/metrics")).text
    assert "repic_index_vectors 3.0" in body
    assert "repic_index_loaded_users 1.0" in body
    assert "repic_index_cache_bytes" in body and "repic_index_evictions_total 0.0" in body


def test_encode_keeps_pixels_so_nothing_is_decoded_twice() -> None:
    img = Image.new("RGB", (40, 30), (10, 20, 30))
    out = encode_rgb(img)
    assert out.to_pil() is out.pixels and out.pixels is not None
