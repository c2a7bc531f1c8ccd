"""Request and response models of `/captions` (kept captions, corrections, teaching)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, model_validator

from app.api.schemas import ID_MAX, ConceptRef, ConceptUsed, PlainText

if TYPE_CHECKING:
    from app.services.history import KeptCaption

ConceptIdList = Annotated[list[Annotated[int, Field(ge=1, le=ID_MAX)]] | None, Field(max_length=32)]
Box = Annotated[
    list[Annotated[int, Field(ge=0, le=100_000)]],
    Field(
        min_length=4,
        max_length=4,
        description="`[x1, y1, x2, y2]` in the kept photo's pixels (its `width` x `height`).",
    ),
]


class HistorySettingsPublic(BaseModel):
    keep_captions: bool = Field(
        description="Keep every caption (photo, options, result) so it can be corrected later; "
        "`POST /caption` can override it per request with `keep`."
    )


class FeedbackCreate(BaseModel):
    """A correction of a kept caption: any of the fields, at least one."""

    present: ConceptIdList = Field(
        None, description="Your concepts that really are in the photo (ids)."
    )
    wrong: ConceptIdList = Field(
        None, description="Your concepts the caption named although they are not in the photo."
    )
    caption: PlainText | None = Field(
        None,
        min_length=1,
        max_length=4000,
        description="The caption as it should read; it must name every concept in `present`.",
    )
    rating: int | None = Field(None, ge=1, le=5, description="1 (useless) to 5 (perfect).")

    @model_validator(mode="after")
    def _something(self) -> FeedbackCreate:
        given = (self.present, self.wrong, self.caption, self.rating)
        if all(value is None for value in given):
            raise ValueError("give at least one of present, wrong, caption or rating")
        return self


class FeedbackPublic(BaseModel):
    present: list[ConceptRef]
    wrong: list[ConceptRef]
    caption: str | None
    rating: int | None
    created_at: datetime


class TeachRequest(BaseModel):
    concept_id: int = Field(ge=1, le=ID_MAX, description="Your concept that the photo shows.")
    box: Box | None = Field(None, description="Teach only this crop of the kept photo.")


class TaughtPublic(BaseModel):
    concept_id: int
    image_id: int | None = Field(
        description="The concept's reference image with the taught bytes (null once deleted)."
    )
    box: list[int] | None


class CaptionRecordPublic(BaseModel):
    id: int
    created_at: datetime
    caption: str
    model: str
    options: dict[str, Any] = Field(description="The request's options (top_k, min_score, ...).")
    concepts_used: list[ConceptUsed]
    concepts_mentioned: list[ConceptRef]
    sha256: str = Field(description="Of the kept photo (`GET /captions/{id}/image`).")
    width: int
    height: int
    feedback: FeedbackPublic | None
    taught: list[TaughtPublic]


class CaptionRecordsPublic(BaseModel):
    data: list[CaptionRecordPublic]
    count: int


def record_public(kept: KeptCaption) -> CaptionRecordPublic:
    """The API view of a kept caption."""
    return CaptionRecordPublic(
        id=kept.id,
        created_at=kept.created_at,
        caption=kept.caption,
        model=kept.model,
        options=kept.options,
        concepts_used=[ConceptUsed(**u) for u in kept.concepts_used],
        concepts_mentioned=[ConceptRef(**m) for m in kept.concepts_mentioned],
        sha256=kept.sha256,
        width=kept.width,
        height=kept.height,
        feedback=None if kept.feedback is None else FeedbackPublic(**kept.feedback),
        taught=[TaughtPublic(**t) for t in kept.taught],
    )
