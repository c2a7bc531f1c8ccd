"""`POST /retrieve` and `POST /caption`: the personalized pipeline."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import Field

from app.deps import CurrentUser, RuntimeDep
from app.problems import problem_responses
from app.runtime import Runtime
from app.schemas import (
    ID_MAX,
    CaptionPublic,
    ConceptRef,
    RetrievalPublic,
    RetrievedConceptPublic,
)
from app.services.captioning import CaptionRequest, CaptionService
from app.services.history import HistoryService
from app.services.retrieval import RetrievalService
from app.services.streaming import EVENT_STREAM, StreamingCaptionService
from app.services.timings import Timings
from app.uploads import decode_query, read_upload, single_valued
from model.photos import QueryPhoto
from model.prompt import PromptStyle

retrieve_router = APIRouter(prefix="/retrieve", tags=["retrieval"])
caption_router = APIRouter(prefix="/caption", tags=["captions"])

TopK = Annotated[int | None, Form(ge=1, le=8, description="Concepts to retrieve (default 2).")]
MinScore = Annotated[
    float | None,
    Form(ge=-1.0, le=1.0, description="Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE)."),
]
QueryImage = Annotated[UploadFile, File(description="The photo to caption (JPEG/PNG/WebP/GIF/BMP)")]


async def _query(runtime: Runtime, upload: UploadFile, timings: Timings) -> QueryPhoto:
    limits = runtime.settings.upload
    data = await read_upload(upload, limits.max_bytes)
    clip_min_side = RetrievalService(runtime).clip_min_side()
    with timings.stage("decode"):
        return await runtime.run(
            decode_query,
            upload.filename or "",
            data,
            max_pixels=limits.max_pixels,
            vlm_max_pixels=runtime.settings.vlm.max_pixels,
            clip_min_side=clip_min_side,
            max_request_pixels=limits.max_request_pixels,
        )


@retrieve_router.post(
    "",
    response_model=RetrievalPublic,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    dependencies=[Depends(single_valued("image", "top_k", "min_score"))],
)
async def retrieve(
    runtime: RuntimeDep,
    user: CurrentUser,
    image: QueryImage,
    top_k: TopK = None,
    min_score: MinScore = None,
) -> RetrievalPublic:
    """Your concepts that appear in the photo, best first, with the crop that matched."""
    start = time.perf_counter()
    timings = Timings(runtime.metrics)
    query = await _query(runtime, image, timings)
    cfg = runtime.settings.retrieval
    service = RetrievalService(runtime)
    matches = await runtime.run(
        lambda: service.retrieve(
            user.id,
            query,
            top_k=top_k or cfg.top_k,
            min_score=cfg.min_score if min_score is None else min_score,
            timings=timings,
        )
    )
    timings.ms["total"] = (time.perf_counter() - start) * 1000
    return RetrievalPublic(
        data=[
            RetrievedConceptPublic(
                concept=ConceptRef(id=m.concept.id, name=m.concept.name),
                category=m.concept.category,
                score=m.score,
                image_id=m.image.id,
                box=list(m.box) if m.box else None,
            )
            for m in matches
        ],
        timings_ms=timings.ms,
    )


@caption_router.post(
    "",
    response_model=CaptionPublic,
    responses={
        **problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 502, 503, 504),
        200: {
            "description": "The caption; with `stream=true`, Server-Sent Events: `delta` "
            '(`{"text": ...}`) as the model writes, then `result` (this JSON body) or '
            "`problem` (an RFC 9457 problem).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
    },
    dependencies=[
        Depends(
            single_valued(
                "image",
                "top_k",
                "min_score",
                "instruction",
                "max_tokens",
                "prompt_style",
                "stream",
                "keep",
            )
        )
    ],
)
async def caption(
    runtime: RuntimeDep,
    user: CurrentUser,
    image: QueryImage,
    top_k: TopK = None,
    min_score: MinScore = None,
    concept_ids: Annotated[
        list[Annotated[int, Field(ge=1, le=ID_MAX)]] | None,
        Form(
            description="Skip retrieval: caption with exactly these concepts (yours).", max_length=8
        ),
    ] = None,
    instruction: Annotated[
        str | None,
        Form(
            max_length=1000,
            description='Replaces "Give a personalized caption of this image."; may be a '
            'question such as "What is <bo> doing?".',
        ),
    ] = None,
    max_tokens: Annotated[int | None, Form(ge=1, le=1024)] = None,
    prompt_style: Annotated[
        PromptStyle, Form(description="`zero_shot` for a plain Qwen2.5-VL checkpoint.")
    ] = PromptStyle.REPIC,
    stream: Annotated[
        bool, Form(description="Answer `text/event-stream`: the caption as it is written.")
    ] = False,
    keep: Annotated[
        bool | None,
        Form(
            description="Keep this caption and its photo for corrections (`GET /captions`); "
            "omitted: your `keep_captions` setting (off unless you turned it on)."
        ),
    ] = None,
) -> CaptionPublic | Response:
    """A caption of the photo that names your concepts (retrieved, or the ones you name).

    Kept (with its photo, for corrections) only when you opted in or send `keep=true`."""
    start = time.perf_counter()
    timings = Timings(runtime.metrics)
    query = await _query(runtime, image, timings)
    request = CaptionRequest.from_settings(
        runtime.settings,
        top_k=top_k,
        min_score=min_score,
        concept_ids=concept_ids,
        instruction=instruction,
        max_tokens=max_tokens,
        style=prompt_style,
    )
    history = HistoryService(runtime)
    keeping = user.keep_captions if keep is None else keep

    async def finish(body: CaptionPublic) -> CaptionPublic:
        if not keeping:
            return body
        kept = await runtime.run(history.keep, user.id, query.vlm, request, body)
        return body.model_copy(update={"history_id": kept})

    if stream:
        events = await StreamingCaptionService(runtime).caption_events(
            user.id, query, request, timings, start, finish
        )
        return StreamingResponse(events, media_type=EVENT_STREAM)
    result = await CaptionService(runtime).caption(user.id, query, request, timings)
    timings.ms["total"] = (time.perf_counter() - start) * 1000
    return await finish(result.public())
