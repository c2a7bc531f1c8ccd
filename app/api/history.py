"""`/captions`: kept captions (opt-in), their corrections, and teaching retrieval from them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status

from app.api.concepts import _cached_image
from app.api.history_schemas import (
    CaptionRecordPublic,
    CaptionRecordsPublic,
    FeedbackCreate,
    HistorySettingsPublic,
    TaughtPublic,
    TeachRequest,
    record_public,
)
from app.api.schemas import ID_MAX
from app.http.deps import CurrentUser, HistoryServiceDep, RuntimeDep
from app.http.problems import problem_responses
from app.services.inputs import Correction

router = APIRouter(prefix="/captions", tags=["captions"])

CaptionId = Annotated[int, Path(ge=1, le=ID_MAX, description="A kept caption's id")]
_ONE = problem_responses(401, 404, 422, 429)


# Declared before `/{caption_id}` so that `settings` is never read as an id.
@router.get("/settings", response_model=HistorySettingsPublic, responses=_ONE)
async def get_history_settings(
    runtime: RuntimeDep, user: CurrentUser, history: HistoryServiceDep
) -> HistorySettingsPublic:
    """Whether your captions are kept (off unless you turn it on)."""
    keeps = await runtime.run(history.keeps, user.id)
    return HistorySettingsPublic(keep_captions=keeps)


@router.put(
    "/settings",
    response_model=HistorySettingsPublic,
    responses=problem_responses(400, 401, 422, 429),
)
async def update_history_settings(
    runtime: RuntimeDep, user: CurrentUser, history: HistoryServiceDep, body: HistorySettingsPublic
) -> HistorySettingsPublic:
    """Turn keeping captions on or off (turning it off deletes nothing already kept)."""
    keeps = await runtime.run(history.set_keeps, user.id, body.keep_captions)
    return HistorySettingsPublic(keep_captions=keeps)


@router.get("", response_model=CaptionRecordsPublic, responses=problem_responses(401, 422, 429))
async def list_captions(
    runtime: RuntimeDep,
    user: CurrentUser,
    history: HistoryServiceDep,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CaptionRecordsPublic:
    """Your kept captions, newest first."""
    rows, count = await runtime.run(lambda: history.page(user.id, offset=offset, limit=limit))
    return CaptionRecordsPublic(data=[record_public(r) for r in rows], count=count)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 429))
async def delete_captions(
    runtime: RuntimeDep, user: CurrentUser, history: HistoryServiceDep
) -> Response:
    """Delete every kept caption and its photo."""
    await runtime.run(history.delete_all, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{caption_id}", response_model=CaptionRecordPublic, responses=_ONE)
async def get_caption(
    runtime: RuntimeDep, user: CurrentUser, history: HistoryServiceDep, caption_id: CaptionId
) -> CaptionRecordPublic:
    """One kept caption with its correction and the photos taught from it."""
    return record_public(await runtime.run(history.get, user.id, caption_id))


@router.get(
    "/{caption_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The photo as the model saw it"},
        304: {"description": "Not Modified: the `If-None-Match` ETag is current"},
        **_ONE,
        **problem_responses(503),
    },
)
async def get_caption_image(
    runtime: RuntimeDep,
    user: CurrentUser,
    history: HistoryServiceDep,
    caption_id: CaptionId,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """The kept photo (the query as sent to the model: upright, re-encoded, within budget)."""
    stored = await runtime.run(history.photo, user.id, caption_id)
    return _cached_image(stored, if_none_match)


@router.delete("/{caption_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ONE)
async def delete_caption(
    runtime: RuntimeDep, user: CurrentUser, history: HistoryServiceDep, caption_id: CaptionId
) -> Response:
    """Delete a kept caption and its photo."""
    await runtime.run(history.delete, user.id, caption_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{caption_id}/feedback",
    response_model=CaptionRecordPublic,
    responses=problem_responses(400, 401, 404, 422, 429),
)
async def give_caption_feedback(
    runtime: RuntimeDep,
    user: CurrentUser,
    history: HistoryServiceDep,
    caption_id: CaptionId,
    body: FeedbackCreate,
) -> CaptionRecordPublic:
    """Correct a kept caption: the concepts really present, the ones wrongly named, the
    caption as it should read (it must name the present ones), a rating. Replaces an earlier
    correction."""
    row = await runtime.run(history.feedback, user.id, caption_id, Correction(**body.model_dump()))
    return record_public(row)


@router.post(
    "/{caption_id}/teach",
    response_model=TaughtPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
)
async def teach_from_caption(
    runtime: RuntimeDep,
    user: CurrentUser,
    history: HistoryServiceDep,
    caption_id: CaptionId,
    body: TeachRequest,
) -> TaughtPublic:
    """Add the kept photo, or the `box` crop of it, to a concept's reference photos: retrieval
    finds the concept in such photos at once (same intake and quotas as
    `POST /concepts/{id}/images`)."""
    taught = await runtime.run(history.teach, user.id, caption_id, body.concept_id, body.box)
    return TaughtPublic(**asdict(taught))
