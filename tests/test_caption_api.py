"""`POST /caption` through the in-process transformers backend on the tiny random Qwen2.5-VL.

Random weights write random text: these tests check plumbing (what reaches the model, what comes
back, errors), never caption quality."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from model.prompt import ImagePart, RepicPrompt, TextPart
from model.vlm.base import Generation, VLMTimeout, VLMUnavailable
from tests.helpers import images
from tests.helpers.api import Recorder, UserClient, assert_problem, caption, create

pytestmark = pytest.mark.also_on_s3  # and once more with photos in S3


def texts(prompt: RepicPrompt) -> list[str]:
    return [p.text for p in prompt.parts if isinstance(p, TextPart)]


async def test_caption_with_retrieval(alice: UserClient, recorder: Recorder) -> None:
    bo = (await create(alice, "bo", images.pattern(1), info="my corgi\nloves balls")).json()
    await create(alice, "thao", images.pattern(2), info="my friend")
    resp = await caption(alice, images.pattern(1), top_k="2")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body["caption"], str) and body["model"]
    assert body["concepts_used"][0] == {
        "id": bo["id"],
        "name": "bo",
        "score": pytest.approx(1, abs=1e-3),
    }
    assert {"decode", "embed", "search", "prompt", "vlm", "total"} <= set(body["timings_ms"])
    prompt = recorder.prompts[-1]
    assert texts(prompt)[0] == "1. Name: <bo>, Info: my corgi loves balls"
    assert (
        texts(prompt)[-1] == "This is the query image. Give a personalized caption of this image."
    )
    kinds = [type(p) for p in prompt.parts]
    assert kinds == [ImagePart, TextPart, ImagePart, TextPart, ImagePart, TextPart]


async def test_caption_skip_retrieval_uses_exactly_the_named_concepts(
    alice: UserClient, recorder: Recorder
) -> None:
    await create(alice, "bo", images.pattern(1))
    thao = (await create(alice, "thao", images.pattern(2), images.pattern(3))).json()
    resp = await alice.client.post(
        "/caption",
        files={"image": ("q.jpg", images.pattern(3), "image/jpeg")},
        data={"concept_ids": [str(thao["id"])], "instruction": "What is <thao> doing?"},
    )
    assert resp.status_code == 200, resp.text
    used = resp.json()["concepts_used"]
    assert [u["name"] for u in used] == ["thao"] and used[0]["score"] is None
    prompt = recorder.prompts[-1]
    assert texts(prompt) == [
        "1. Name: <thao>, Info: a corgi",
        "This is the query image. What is <thao> doing?",
    ]
    demo = prompt.parts[0]
    assert isinstance(demo, ImagePart)
    assert demo.image.sha256 == thao["images"][1]["sha256"]  # the reference most like the query


async def test_caption_concept_ids_of_another_user_are_404(
    alice: UserClient, bob: UserClient
) -> None:
    rex = (await create(bob, "rex", images.pattern(1))).json()
    resp = await alice.client.post(
        "/caption",
        files={"image": ("q.jpg", images.pattern(1), "image/jpeg")},
        data={"concept_ids": [str(rex["id"])]},
    )
    assert_problem(resp, 404, "not-found")


async def test_caption_reports_mentioned_concepts(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    bo = (await create(alice, "bo", images.pattern(1))).json()
    await create(alice, "mr. whiskers", images.pattern(2))

    class Fixed:
        model_name = "fixed"

        async def generate(
            self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
        ) -> Generation:
            return Generation(text="<bo>'s ball rolls past Bob and the elbow.", model="fixed")

    monkeypatch.setattr(app.state.runtime, "vlm", Fixed())
    body = (await caption(alice, images.pattern(1))).json()
    assert body["concepts_mentioned"] == [{"id": bo["id"], "name": "bo"}]


async def test_caption_without_concepts_still_captions(
    alice: UserClient, recorder: Recorder
) -> None:
    resp = await caption(alice, images.pattern(1))
    assert resp.status_code == 200 and resp.json()["concepts_used"] == []
    assert len(recorder.prompts[-1].parts) == 2


async def test_caption_zero_shot_style(alice: UserClient, recorder: Recorder) -> None:
    resp = await caption(alice, images.pattern(1), prompt_style="zero_shot")
    assert resp.status_code == 200
    assert texts(recorder.prompts[-1])[-1].endswith(" Output the final answer including its name.")


async def test_caption_query_resized_to_pixel_budget(alice: UserClient, recorder: Recorder) -> None:
    resp = await caption(alice, images.pattern(1, size=(2000, 1000)))
    assert resp.status_code == 200
    query = recorder.prompts[-1].images[-1]
    assert query.width * query.height <= 1024 * 28 * 28


async def test_cache_salt_differs_per_user(
    alice: UserClient, bob: UserClient, recorder: Recorder
) -> None:
    await caption(alice, images.pattern(1))
    await caption(bob, images.pattern(1))
    assert len(set(recorder.salts)) == 2


@pytest.mark.parametrize(
    ("form", "status"),
    [({"max_tokens": "1025"}, 422), ({"top_k": "9"}, 422), ({"concept_ids": ["x"]}, 422)],
)
async def test_caption_invalid_form(
    alice: UserClient, form: dict[str, object], status: int
) -> None:
    assert_problem(await caption(alice, images.pattern(1), **form), status, "validation-error")


async def test_caption_bad_image(alice: UserClient) -> None:
    assert_problem(await caption(alice, images.png_bomb()), 413, "image-too-large")


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (VLMUnavailable("connection refused"), 503, "vlm-unavailable"),
        (VLMTimeout("no answer in 120 s"), 504, "vlm-timeout"),
    ],
)
async def test_vlm_failures_map_to_5xx_and_store_nothing(
    app: FastAPI,
    alice: UserClient,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    kind: str,
) -> None:
    await create(alice, "bo", images.pattern(1))

    class Failing:
        model_name = "failing"

        async def generate(self, *_: object, **__: object) -> Generation:
            raise error

    monkeypatch.setattr(app.state.runtime, "vlm", Failing())
    resp = await caption(alice, images.pattern(1))
    assert_problem(resp, status, kind)
    if status == 503:
        assert resp.headers["retry-after"]
    assert (await alice.client.get("/concepts")).json()["count"] == 1
    metrics = (await alice.client.get("/metrics")).text
    assert f'repic_vlm_errors_total{{kind="{error.kind}"}} 1.0' in metrics  # type: ignore[attr-defined]


async def test_missing_vlm_checkpoint_is_503(
    app: FastAPI, alice: UserClient, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.vlm.transformers_backend import TransformersBackend

    monkeypatch.setattr(
        app.state.runtime, "vlm", TransformersBackend("/nonexistent/RePIC_Qwen2.5VL_7B")
    )
    body = assert_problem(await caption(alice, images.pattern(1)), 503, "vlm-unavailable")
    assert "REPIC_VLM__MODEL" in str(body["detail"])
    ready = (await alice.client.get("/readyz")).json()["components"]["vlm"]
    assert ready["ready"] is False


async def test_display_name_is_what_the_model_sees_and_caller_order_is_kept(
    alice: UserClient, recorder: Recorder
) -> None:
    iron = await create(
        alice, "ironman", images.pattern(1), info=" a red suit", display_name="Iron Man"
    )
    assert iron.status_code == 201, iron.text
    assert (iron.json()["name"], iron.json()["display_name"]) == ("ironman", "Iron Man")
    bo = (await create(alice, "bo", images.pattern(2), info="a dog")).json()
    resp = await alice.client.post(
        "/caption",
        files={"image": ("q.jpg", images.pattern(3), "image/jpeg")},
        data={"concept_ids": [str(bo["id"]), str(iron.json()["id"])]},
    )
    assert resp.status_code == 200, resp.text
    # the caller's order (bo first, though created second); the info byte for byte
    assert texts(recorder.prompts[-1])[:2] == [
        "1. Name: <bo>, Info: a dog",
        "2. Name: <Iron Man>, Info:  a red suit",
    ]
    # the response still names concepts by their key
    assert [u["name"] for u in resp.json()["concepts_used"]] == ["bo", "ironman"]


async def test_a_caption_naming_the_display_name_mentions_the_concept(
    app: FastAPI, alice: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    iron = (await create(alice, "ironman", images.pattern(1), display_name="Iron Man")).json()

    class Fixed:
        model_name = "fixed"

        async def generate(
            self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
        ) -> Generation:
            return Generation(text="<Iron Man> lands on the roof.", model="fixed")

    monkeypatch.setattr(app.state.runtime, "vlm", Fixed())
    body = (await caption(alice, images.pattern(1))).json()
    assert body["concepts_mentioned"] == [{"id": iron["id"], "name": "ironman"}]


async def test_display_name_can_be_changed_and_removed(alice: UserClient) -> None:
    iron = (await create(alice, "ironman", images.pattern(1), display_name="Iron Man")).json()
    url = f"/concepts/{iron['id']}"
    changed = await alice.client.patch(url, json={"display_name": "Tony"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["display_name"] == "Tony"
    removed = await alice.client.patch(url, json={"display_name": None})
    assert removed.json()["display_name"] is None
    bad = await create(alice, "x", images.pattern(2), display_name="<<>>")
    assert_problem(bad, 422, "invalid-name")
