"""`/concepts`: every status path, on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.helpers import images
from tests.helpers.api import PROBLEM, UserClient, assert_problem, create, files

pytestmark = pytest.mark.also_on_s3  # and once more with photos in S3


async def test_create_concept_with_two_images(alice: UserClient) -> None:
    resp = await create(alice, "<bo>", images.pattern(1), images.pattern(2), category="dog")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["name"] == "bo" and body["info"] == "a corgi" and body["category"] == "dog"
    assert len(body["images"]) == 2
    assert {"id", "sha256", "width", "height"} <= set(body["images"][0])


async def test_create_concept_brackets_and_case_are_one_name(alice: UserClient) -> None:
    assert (await create(alice, "bo")).status_code == 201
    assert_problem(await create(alice, "<BO>"), 409, "concept-exists")


@pytest.mark.parametrize("bad", ["", "a/b", "<b>o>", "x" * 65, "___", "bo\x00"])
async def test_create_concept_invalid_name(alice: UserClient, bad: str) -> None:
    resp = await create(alice, bad)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert (await alice.client.get("/concepts")).json()["count"] == 0


async def test_create_concept_info_too_long(alice: UserClient) -> None:
    assert_problem(await create(alice, "bo", info="x" * 2001), 422, "validation-error")


async def test_create_concept_without_images(alice: UserClient) -> None:
    resp = await alice.client.post("/concepts", data={"name": "bo", "info": ""})
    assert_problem(resp, 422, "validation-error")


async def test_create_concept_too_many_images(alice: UserClient) -> None:
    resp = await create(alice, "bo", *[images.pattern(i) for i in range(11)])
    assert_problem(resp, 422, "image-count")


@pytest.mark.parametrize(
    ("blob", "status", "kind"),
    [
        (b"", 422, "invalid-image"),
        (b"just some text, named .jpg", 415, "unsupported-image-type"),
        (images.truncated_jpeg(), 422, "invalid-image"),
    ],
)
async def test_create_concept_bad_image_stores_nothing(
    alice: UserClient, blob: bytes, status: int, kind: str
) -> None:
    resp = await create(alice, "bo", images.pattern(1), blob)
    assert_problem(resp, status, kind)
    assert (await alice.client.get("/concepts")).json()["count"] == 0


async def test_create_concept_png_bomb(alice: UserClient) -> None:
    resp = await create(alice, "bo", images.png_bomb())
    assert_problem(resp, 413, "image-too-large")


async def test_create_concept_file_over_size_cap(alice: UserClient) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)
    assert_problem(await create(alice, "bo", big), 413, "image-too-large")


async def test_body_over_limit_is_refused_while_streaming(alice: UserClient) -> None:
    sent = 0

    async def endless() -> object:
        nonlocal sent
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        chunk = b"\0" * (1 << 20)
        for _ in range(200):  # 200 MiB, far over the 101 MiB body cap
            sent += len(chunk)
            yield chunk

    resp = await alice.client.post(
        "/concepts",
        content=endless(),  # type: ignore[arg-type]
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert_problem(resp, 413, "body-too-large")
    assert sent < 150 * (1 << 20)


async def test_content_length_over_limit_is_refused_at_once(alice: UserClient) -> None:
    resp = await alice.client.post(
        "/concepts",
        content=b"tiny",
        headers={"content-type": "multipart/form-data; boundary=x", "content-length": "999999999"},
    )
    assert_problem(resp, 413, "body-too-large")


async def test_stored_image_is_upright_and_metadata_free(alice: UserClient) -> None:
    created = (await create(alice, "bo", images.exif_rotated_with_gps())).json()
    image = created["images"][0]
    assert (image["width"], image["height"]) == (20, 40)
    resp = await alice.client.get(f"/concepts/{created['id']}/images/{image['id']}")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    assert resp.headers["etag"] == f'"{image["sha256"]}"'
    img = Image.open(io.BytesIO(resp.content))
    assert img.size == (20, 40) and len(img.getexif()) == 0
    assert b"TestCam" not in resp.content and b"Exif" not in resp.content


@pytest.mark.parametrize(
    "blob",
    [images.cmyk_jpeg(), images.png16(), images.animated_gif()],
    ids=["cmyk", "png16", "gif"],
)
async def test_create_concept_odd_image_modes(alice: UserClient, blob: bytes) -> None:
    assert (await create(alice, "bo", blob)).status_code == 201


async def test_list_concepts_paginates_and_filters(alice: UserClient) -> None:
    for i, name in enumerate(["bo", "thao", "mr. whiskers"]):
        assert (await create(alice, name, images.pattern(i))).status_code == 201
    page = (await alice.client.get("/concepts", params={"limit": 2})).json()
    assert page["count"] == 3 and [c["name"] for c in page["data"]] == ["bo", "thao"]
    page2 = (await alice.client.get("/concepts", params={"limit": 2, "offset": 2})).json()
    assert [c["name"] for c in page2["data"]] == ["mr. whiskers"]
    found = (await alice.client.get("/concepts", params={"name": "<Mr. Whiskers>"})).json()
    assert found["count"] == 1 and found["data"][0]["name"] == "mr. whiskers"


async def test_list_concepts_bad_paging(alice: UserClient) -> None:
    resp = await alice.client.get("/concepts", params={"limit": 0})
    assert_problem(resp, 422, "validation-error")


async def test_get_concept(alice: UserClient) -> None:
    created = (await create(alice)).json()
    resp = await alice.client.get(f"/concepts/{created['id']}")
    assert resp.status_code == 200 and resp.json() == created


async def test_get_concept_not_found(alice: UserClient) -> None:
    assert_problem(await alice.client.get("/concepts/999"), 404, "not-found")


async def test_update_concept(alice: UserClient) -> None:
    created = (await create(alice, category="dog")).json()
    resp = await alice.client.patch(
        f"/concepts/{created['id']}", json={"name": "<Bo Jr>", "info": "new"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["name"], body["info"], body["category"]) == ("Bo Jr", "new", "dog")
    cleared = await alice.client.patch(f"/concepts/{created['id']}", json={"category": None})
    assert cleared.json()["category"] is None


async def test_update_concept_name_conflict(alice: UserClient) -> None:
    await create(alice, "bo", images.pattern(1))
    other = (await create(alice, "thao", images.pattern(2))).json()
    resp = await alice.client.patch(f"/concepts/{other['id']}", json={"name": "BO"})
    assert_problem(resp, 409, "concept-exists")


async def test_update_concept_invalid(alice: UserClient) -> None:
    created = (await create(alice)).json()
    assert_problem(
        await alice.client.patch(f"/concepts/{created['id']}", json={"name": "a/b"}),
        422,
        "invalid-name",
    )
    assert_problem(
        await alice.client.patch(f"/concepts/{created['id']}", json={"colour": "red"}),
        422,
        "validation-error",
    )


async def test_update_concept_not_found(alice: UserClient) -> None:
    assert_problem(await alice.client.patch("/concepts/999", json={"info": "x"}), 404, "not-found")


async def test_delete_concept_removes_it_and_unshared_blobs(alice: UserClient, app) -> None:  # type: ignore[no-untyped-def]
    from app.core.blob_gc import sweep_blobs

    created = (await create(alice)).json()
    runtime = app.state.runtime
    key = runtime.blobs.key_for(created["images"][0]["sha256"])
    assert runtime.blobs.exists(key)
    assert (await alice.client.delete(f"/concepts/{created['id']}")).status_code == 204
    assert_problem(await alice.client.get(f"/concepts/{created['id']}"), 404, "not-found")
    # Never inline: the blob waits out the grace period for reads already under way.
    assert sweep_blobs(runtime).deleted == 0 and runtime.blobs.exists(key)
    assert sweep_blobs(runtime, grace_s=0).deleted == 1
    assert not runtime.blobs.exists(key)


async def test_shared_blob_survives_until_last_reference(
    alice: UserClient,
    bob: UserClient,
    app,  # type: ignore[no-untyped-def]
) -> None:
    from app.core.blob_gc import sweep_blobs

    runtime = app.state.runtime
    same = images.pattern(7)
    a = (await create(alice, "bo", same)).json()
    b = (await create(bob, "rex", same)).json()
    assert a["images"][0]["sha256"] == b["images"][0]["sha256"]
    await alice.client.delete(f"/concepts/{a['id']}")
    assert sweep_blobs(runtime, grace_s=0).still_referenced == 1
    got = await bob.client.get(f"/concepts/{b['id']}/images/{b['images'][0]['id']}")
    assert got.status_code == 200
    await bob.client.delete(f"/concepts/{b['id']}")
    assert sweep_blobs(runtime, grace_s=0).deleted == 1
    assert not runtime.blobs.exists(runtime.blobs.key_for(b["images"][0]["sha256"]))


async def test_delete_concept_not_found(alice: UserClient) -> None:
    assert_problem(await alice.client.delete("/concepts/999"), 404, "not-found")


async def test_add_images(alice: UserClient) -> None:
    created = (await create(alice, "bo", images.pattern(1))).json()
    resp = await alice.client.post(
        f"/concepts/{created['id']}/images", files=files(images.pattern(2), images.pattern(1))
    )
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["images"]) == 2  # the identical photo is not attached twice


async def test_add_images_over_the_limit(alice: UserClient) -> None:
    created = (await create(alice, "bo", *[images.pattern(i) for i in range(10)])).json()
    resp = await alice.client.post(
        f"/concepts/{created['id']}/images", files=files(images.pattern(99))
    )
    assert_problem(resp, 409, "too-many-images")


async def test_add_images_bad_image(alice: UserClient) -> None:
    created = (await create(alice)).json()
    resp = await alice.client.post(f"/concepts/{created['id']}/images", files=files(b"nope"))
    assert_problem(resp, 415, "unsupported-image-type")
    assert len((await alice.client.get(f"/concepts/{created['id']}")).json()["images"]) == 1


async def test_add_images_not_found(alice: UserClient) -> None:
    resp = await alice.client.post("/concepts/999/images", files=files(images.pattern(1)))
    assert_problem(resp, 404, "not-found")


async def test_get_image_not_found(alice: UserClient) -> None:
    created = (await create(alice)).json()
    resp = await alice.client.get(f"/concepts/{created['id']}/images/999")
    assert_problem(resp, 404, "not-found")


async def test_delete_image(alice: UserClient) -> None:
    created = (await create(alice, "bo", images.pattern(1), images.pattern(2))).json()
    first = created["images"][0]["id"]
    assert (
        await alice.client.delete(f"/concepts/{created['id']}/images/{first}")
    ).status_code == 204
    left = (await alice.client.get(f"/concepts/{created['id']}")).json()["images"]
    assert [i["id"] for i in left] == [created["images"][1]["id"]]


async def test_delete_last_image_conflicts(alice: UserClient) -> None:
    created = (await create(alice)).json()
    only = created["images"][0]["id"]
    resp = await alice.client.delete(f"/concepts/{created['id']}/images/{only}")
    assert_problem(resp, 409, "last-image")


async def test_delete_image_not_found(alice: UserClient) -> None:
    created = (await create(alice)).json()
    resp = await alice.client.delete(f"/concepts/{created['id']}/images/999")
    assert_problem(resp, 404, "not-found")


async def test_unknown_route_is_a_problem(alice: UserClient) -> None:
    assert_problem(await alice.client.get("/nope"), 404, "not-found")
