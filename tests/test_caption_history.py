"""Kept captions (opt-in), corrections and teaching retrieval from them.

Captions come from the tiny random Qwen2.5-VL (in-process backend): the text is noise, the
tests check what is kept, who may see it, validation, quotas, retention and the index update.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import update

from app.core.blob_gc import sweep_blobs
from store.captions import CaptionRecord
from store.db import transaction
from store.gc import record_unreferenced
from tests.helpers import images
from tests.helpers.api import UserClient, assert_problem, create
from tests.helpers.history import caption, kept
from tests.helpers.jobs import parse_events


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repic.db'}"


def near_duplicate(blob: bytes) -> bytes:
    """The photo with a 2-pixel border cut off and re-encoded at another quality."""
    with Image.open(io.BytesIO(blob)) as img:
        out = io.BytesIO()
        img.crop((2, 2, img.width - 2, img.height - 2)).save(out, format="JPEG", quality=80)
    return out.getvalue()


async def test_history_is_opt_in_per_user_and_per_request(
    alice: UserClient, bob: UserClient, app: FastAPI
) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    off = await caption(alice, images.pattern(1))
    assert off.status_code == 200 and off.json()["history_id"] is None
    assert (await alice.client.get("/captions")).json() == {"data": [], "count": 0}
    assert (await alice.client.get("/captions/settings")).json() == {"keep_captions": False}

    on = await alice.client.put("/captions/settings", json={"keep_captions": True})
    assert on.json() == {"keep_captions": True}
    first = (await caption(alice, images.pattern(1))).json()["history_id"]
    second = (await caption(alice, images.pattern(2))).json()["history_id"]
    assert (await caption(alice, images.pattern(3), keep="false")).json()["history_id"] is None
    assert (await caption(bob, images.pattern(1))).json()["history_id"] is None  # bob: off

    page = (await alice.client.get("/captions", params={"limit": 1})).json()
    assert page["count"] == 2 and [r["id"] for r in page["data"]] == [second]
    record = (await alice.client.get(f"/captions/{first}")).json()
    assert record["concepts_used"][0]["name"] == "bo"
    assert record["options"]["top_k"] == 1 and record["model"] and record["caption"] is not None
    photo = await alice.client.get(f"/captions/{first}/image")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo.content)) as img:
        assert img.size == (record["width"], record["height"])

    assert (await alice.client.delete(f"/captions/{first}")).status_code == 204
    assert_problem(await alice.client.get(f"/captions/{first}"), 404, "not-found")
    assert (await alice.client.delete("/captions")).status_code == 204
    assert (await alice.client.get("/captions")).json()["count"] == 0
    # Both kept photos lost their rows: the sweep deletes the one nothing else uses and keeps
    # the one whose bytes are also <bo>'s reference photo.
    report = sweep_blobs(app.state.runtime, grace_s=0, orphans=False)
    assert (report.deleted, report.still_referenced) == (1, 1)
    image = bo["images"][0]["id"]
    assert (await alice.client.get(f"/concepts/{bo['id']}/images/{image}")).status_code == 200


async def test_another_users_kept_caption_is_404_everywhere(
    alice: UserClient, bob: UserClient
) -> None:
    await create(alice, "bo", images.pattern(1))
    bobs = (await create(bob, "rex", images.pattern(2))).json()
    record = await kept(alice, images.pattern(1))
    url = f"/captions/{record['id']}"
    assert_problem(await bob.client.get(url), 404, "not-found")
    assert_problem(await bob.client.get(f"{url}/image"), 404, "not-found")
    assert_problem(await bob.client.delete(url), 404, "not-found")
    feedback = await bob.client.post(f"{url}/feedback", json={"rating": 1})
    assert_problem(feedback, 404, "not-found")
    teach = await bob.client.post(f"{url}/teach", json={"concept_id": bobs["id"]})
    assert_problem(teach, 404, "not-found")
    # Alice cannot teach her photo to Bob's concept either.
    theirs = await alice.client.post(f"{url}/teach", json={"concept_id": bobs["id"]})
    assert_problem(theirs, 404, "not-found")
    assert len((await bob.client.get(f"/concepts/{bobs['id']}")).json()["images"]) == 1
    assert (await alice.client.get(url)).json()["taught"] == []


async def test_feedback_is_validated_and_stored(alice: UserClient, bob: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    thao = (await create(alice, "thao", images.pattern(2))).json()
    bobs = (await create(bob, "rex", images.pattern(3))).json()
    url = f"/captions/{(await kept(alice, images.pattern(1)))['id']}/feedback"

    assert_problem(await alice.client.post(url, json={}), 422, "validation-error")
    foreign = await alice.client.post(url, json={"present": [bobs["id"]]})
    assert "no concept with id" in str(assert_problem(foreign, 422, "unknown-concept")["detail"])
    both = await alice.client.post(url, json={"present": [bo["id"]], "wrong": [bo["id"]]})
    assert_problem(both, 422, "contradictory-feedback")
    unnamed = {"present": [bo["id"], thao["id"]], "caption": "<bo> sleeps on the sofa."}
    missing = assert_problem(
        await alice.client.post(url, json=unnamed), 422, "caption-misses-concepts"
    )
    assert "<thao>" in str(missing["detail"])
    assert (await alice.client.get(url.removesuffix("/feedback"))).json()["feedback"] is None

    good = {
        "present": [thao["id"]],
        "wrong": [bo["id"]],
        "caption": "<thao> sits on a bench in the park.",
        "rating": 2,
    }
    resp = await alice.client.post(url, json=good)
    assert resp.status_code == 200, resp.text
    feedback = resp.json()["feedback"]
    assert feedback["present"] == [{"id": thao["id"], "name": "thao"}]
    assert feedback["wrong"] == [{"id": bo["id"], "name": "bo"}]
    assert feedback["caption"] == good["caption"] and feedback["rating"] == 2


async def test_teaching_makes_retrieval_find_the_concept_at_once(alice: UserClient) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    thao = (await create(alice, "thao", images.pattern(2))).json()
    query = images.pattern(7, size=(160, 120))
    record = await kept(alice, query)

    async def retrieve() -> list[dict[str, Any]]:
        files = {"image": ("q.jpg", near_duplicate(query), "image/jpeg")}
        resp = await alice.client.post("/retrieve", files=files, data={"min_score": "-1"})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]  # type: ignore[no-any-return]

    before = await retrieve()
    # Teach the concept that did NOT come first, so only the teaching can put it there.
    target = thao if before[0]["concept"]["id"] == bo["id"] else bo
    resp = await alice.client.post(
        f"/captions/{record['id']}/teach", json={"concept_id": target["id"]}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["image_id"] is not None
    after = await retrieve()
    assert after[0]["concept"]["id"] == target["id"]
    assert after[0]["score"] > 0.9 and after[0]["image_id"] == resp.json()["image_id"]
    concept = (await alice.client.get(f"/concepts/{target['id']}")).json()
    assert len(concept["images"]) == 2
    taught = (await alice.client.get(f"/captions/{record['id']}")).json()["taught"]
    assert taught == [
        {"concept_id": target["id"], "image_id": resp.json()["image_id"], "box": None}
    ]

    crop = {"concept_id": target["id"], "box": [10, 10, 90, 70]}
    made = await alice.client.post(f"/captions/{record['id']}/teach", json=crop)
    assert made.status_code == 201, made.text
    image = next(
        i
        for i in (await alice.client.get(f"/concepts/{target['id']}")).json()["images"]
        if i["id"] == made.json()["image_id"]
    )
    assert (image["width"], image["height"]) == (80, 60)
    outside = {"concept_id": target["id"], "box": [0, 0, 10_000, 10]}
    bad = await alice.client.post(f"/captions/{record['id']}/teach", json=outside)
    assert_problem(bad, 422, "invalid-box")


@pytest.mark.parametrize("settings_overrides", [{"quota": {"photos": 2}}])
async def test_kept_photos_count_against_the_photo_quota(alice: UserClient, app: FastAPI) -> None:
    registry = app.state.runtime.metrics.registry

    def captions_generated() -> float:
        return registry.get_sample_value("repic_stage_seconds_count", {"stage": "vlm"}) or 0.0

    bo = (await create(alice, "bo", images.pattern(1))).json()
    await kept(alice, images.pattern(2))
    generated = captions_generated()
    over = await caption(alice, images.pattern(3), keep="true")
    assert "2 photos" in str(assert_problem(over, 409, "quota-exceeded")["detail"])
    assert captions_generated() == generated, "refused before the model ran"
    more = [("images", ("b.jpg", images.pattern(4), "image/jpeg"))]
    refused = await alice.client.post(f"/concepts/{bo['id']}/images", files=more)
    assert_problem(refused, 409, "quota-exceeded")
    assert (await alice.client.get("/captions")).json()["count"] == 1
    assert (await caption(alice, images.pattern(3))).status_code == 200  # not kept: fine


async def test_retention_expires_kept_captions_and_their_photos(
    alice: UserClient, app: FastAPI
) -> None:
    runtime = app.state.runtime
    old = await kept(alice, images.pattern(1))
    young = await kept(alice, images.pattern(2))
    blobs = runtime.blobs
    with runtime.sessions() as session:
        keys = {r.id: r.blob_key for r in session.query(CaptionRecord).all()}
    with transaction(runtime.sessions) as session:
        long_ago = datetime.now(UTC) - timedelta(days=31)
        session.execute(
            update(CaptionRecord).where(CaptionRecord.id == old["id"]).values(created_at=long_ago)
        )
        # A kept photo that lost some other reference stays while the caption keeps it.
        record_unreferenced(session, [keys[young["id"]]])

    report = sweep_blobs(runtime, grace_s=0, orphans=False)
    assert report.captions_expired == 1
    assert_problem(await alice.client.get(f"/captions/{old['id']}"), 404, "not-found")
    assert blobs.exists(keys[old["id"]])  # its grace period starts now, for in-flight reads
    assert sweep_blobs(runtime, grace_s=0, orphans=False).deleted == 1
    assert not blobs.exists(keys[old["id"]])
    assert blobs.exists(keys[young["id"]])
    assert (await alice.client.get(f"/captions/{young['id']}/image")).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"quota": {"photos": 1}}])
async def test_a_streamed_caption_is_kept_too_or_refused_before_it_starts(
    alice: UserClient,
) -> None:
    resp = await caption(alice, images.pattern(1), stream="true", keep="true")
    kind, result = parse_events(resp.text)[-1]
    assert kind == "result" and result["history_id"] is not None
    got = await alice.client.get(f"/captions/{result['history_id']}")
    assert got.json()["caption"] == result["caption"]
    # Over the quota, the request is refused as a plain problem before any model work; a quota
    # reached while the caption streams (a race) still ends the stream with a problem event.
    over = await caption(alice, images.pattern(2), stream="true", keep="true")
    assert_problem(over, 409, "quota-exceeded")
