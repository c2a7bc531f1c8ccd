"""`POST /retrieve` and `POST /caption`: the personalized pipeline."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import Field

from app.api.schemas import (
    ID_MAX,
    CaptionPublic,
    ConceptRef,
    RetrievalPublic,
    RetrievedConceptPublic,
    caption_public,
)
from app.core.runtime import Runtime
from app.http.deps import (
    CaptionServiceDep,
    CurrentUser,
    HistoryServiceDep,
    RetrievalServiceDep,
    RuntimeDep,
    StreamingCaptionServiceDep,
)
from app.http.problems import problem_json, problem_responses
from app.http.uploads import read_upload, single_valued
from app.services.captioning import CaptionRequest, CaptionResult
from app.services.errors import DomainError
from app.services.intake import decode_query
from app.services.retrieval import RetrievalService
from app.services.streaming import CaptionEvent
from app.services.timings import Timings
from model.photos import QueryPhoto
from model.prompt import PromptStyle
from model.vlm.streaming import Delta

retrieve_router = APIRouter(prefix="/retrieve", tags=["retrieval"])
caption_router = APIRouter(prefix="/caption", tags=["captions"])

TopK = Annotated[int | None, Form(ge=1, le=8, description="Concepts to retrieve (default 2).")]
MinScore = Annotated[
    float | None,
    Form(ge=-1.0, le=1.0, description="Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE)."),
]
QueryImage = Annotated[UploadFile, File(description="The photo to caption (JPEG/PNG/WebP/GIF/BMP)")]

EVENT_STREAM = "text/event-stream"


def sse(event: str, data: str) -> bytes:
    """One Server-Sent Event (``data`` is one line of JSON)."""
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _sse(
    events: AsyncGenerator[CaptionEvent],
    finish: Callable[[CaptionResult], Awaitable[CaptionPublic]],
) -> AsyncIterator[bytes]:
    """The caption's events as Server-Sent Events: deltas, then the result or a problem;
    ``finish`` (keeping the caption when asked) makes the result event's body."""
    async with contextlib.aclosing(events):  # the client leaving closes the model's stream
        async for event in events:
            if isinstance(event, Delta):
                yield sse("delta", json.dumps({"text": event.text}))
            elif isinstance(event, DomainError):
                yield sse("problem", problem_json(event))
            else:
                try:
                    body = await finish(event)
                except DomainError as exc:
                    yield sse("problem", problem_json(exc))
                    return
                yield sse("result", body.model_dump_json())


async def _query(
    runtime: Runtime, retrieval: RetrievalService, upload: UploadFile, timings: Timings
) -> QueryPhoto:
    limits = runtime.settings.upload
    data = await read_upload(upload, limits.max_bytes)
    clip_min_side = retrieval.clip_min_side()
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
    retrieval: RetrievalServiceDep,
    image: QueryImage,
    top_k: TopK = None,
    min_score: MinScore = None,
) -> RetrievalPublic:
    """Your concepts that appear in the photo, best first, with the crop that matched."""
    start = time.perf_counter()
    timings = Timings(runtime.metrics)
    query = await _query(runtime, retrieval, image, timings)
    cfg = runtime.settings.retrieval
    matches = await runtime.run(
        lambda: retrieval.retrieve(
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
    retrieval: RetrievalServiceDep,
    captions: CaptionServiceDep,
    streaming: StreamingCaptionServiceDep,
    history: HistoryServiceDep,
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
    query = await _query(runtime, retrieval, image, timings)
    request = CaptionRequest.from_settings(
        runtime.settings.retrieval,
        runtime.settings.vlm,
        top_k=top_k,
        min_score=min_score,
        concept_ids=concept_ids,
        instruction=instruction,
        max_tokens=max_tokens,
        style=prompt_style,
    )
    keeping = user.keep_captions if keep is None else keep
    if keeping:  # over quota: say so before the model spends seconds on a caption
        await runtime.run(history.check_room, user.id, query.vlm)

    async def finish(result: CaptionResult) -> CaptionPublic:
        body = caption_public(result)
        if not keeping:
            return body
        kept = await runtime.run(history.keep, user.id, query.vlm, request, result)
        return body.model_copy(update={"history_id": kept})

    if stream:
        events = await streaming.caption_events(user.id, query, request, timings, start)
        return StreamingResponse(_sse(events, finish), media_type=EVENT_STREAM)
    result = await captions.caption(user.id, query, request, timings)
    timings.ms["total"] = (time.perf_counter() - start) * 1000
    return await finish(result)
