"""Request and response models, one family per resource."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from app.services.captioning import CaptionResult

INFO_MAX = 2000
CATEGORY_MAX = 64
#: Ids are 64-bit signed integers in the database; larger numbers can name nothing.
ID_MAX = 2**63 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


#: Free text stored in the database: any character but NUL, which PostgreSQL cannot store.
PlainText = Annotated[str, AfterValidator(_no_nul)]


class ConceptImagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    width: int
    height: int


class ConceptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str = Field(description="Stored without angle brackets; the concept's identity.")
    display_name: str | None = Field(
        default=None,
        description="Shown to the model as <display_name> instead of <name> when set "
        "(RAP/RePIC database.json `name`); captions naming either count as mentions.",
    )
    info: str
    category: str | None
    images: list[ConceptImagePublic]
    created_at: datetime
    updated_at: datetime


class ConceptsPublic(BaseModel):
    data: list[ConceptPublic]
    count: int = Field(description="Total number of concepts matching the filter.")


class ConceptUpdate(BaseModel):
    """Fields to change. An omitted field stays as it is; `null` clears a field (`info` becomes
    empty, `category` none); `name` cannot be cleared, so `"name": null` is refused."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, min_length=1, max_length=66, description="A new name; never null."
    )
    display_name: str | None = Field(
        default=None, max_length=66, description="Empty or null removes it."
    )
    info: PlainText | None = Field(
        default=None, max_length=INFO_MAX, description="New info text; null clears it."
    )
    category: PlainText | None = Field(
        default=None, max_length=CATEGORY_MAX, description="New category; null clears it."
    )

    @model_validator(mode="after")
    def _name_not_cleared(self) -> ConceptUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null: a concept always has a name")
        return self


USER_NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=USER_NAME_PATTERN,
        description="Case-insensitive: `Alice` and `alice` are one user.",
    )


class UserDeleted(BaseModel):
    name: str
    concepts: int = Field(description="Concepts deleted with the user.")
    photos: int = Field(description="Reference photos deleted with the user.")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeysPublic(BaseModel):
    data: list[ApiKeyPublic]
    count: int


class ApiKeyCreated(BaseModel):
    user: UserPublic
    prefix: str
    key: str = Field(description="The new API key. It is shown once and never stored.")


class Health(BaseModel):
    status: str


class ComponentReadiness(BaseModel):
    ready: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    components: dict[str, ComponentReadiness]


class ConceptRef(BaseModel):
    id: int
    name: str


class RetrievedConceptPublic(BaseModel):
    concept: ConceptRef
    category: str | None
    score: float = Field(description="Cosine similarity of the best matching crop and image.")
    image_id: int = Field(description="The reference image that matched best (the demo).")
    box: list[int] | None = Field(
        description="Query crop `[x0, y0, x1, y1]` that matched, in the upright query's pixels."
    )


class RetrievalPublic(BaseModel):
    data: list[RetrievedConceptPublic]
    timings_ms: dict[str, float]


class ConceptUsed(BaseModel):
    id: int
    name: str
    score: float | None = Field(description="Retrieval similarity; null when named by the caller.")


class CaptionPublic(BaseModel):
    caption: str
    concepts_used: list[ConceptUsed]
    concepts_mentioned: list[ConceptRef] = Field(
        description="Your concepts that the caption names (brackets optional, any case)."
    )
    model: str
    timings_ms: dict[str, float] = Field(
        description="decode, embed, search, prompt, vlm and total, in milliseconds."
    )
    history_id: int | None = Field(
        None,
        description="Id of the kept caption (`GET /captions/{id}`) when it was kept (your "
        "`keep_captions` setting or the request's `keep`); null otherwise.",
    )


def caption_public(result: CaptionResult) -> CaptionPublic:
    """The body of `POST /caption` (also a job's result and `repic caption --json`)."""
    return CaptionPublic(
        caption=result.caption,
        concepts_used=[
            ConceptUsed(
                id=m.concept.id,
                name=m.concept.name,
                score=None if math.isnan(m.score) else m.score,
            )
            for m in result.used
        ],
        concepts_mentioned=[ConceptRef(id=i, name=n) for i, n in result.mentioned],
        model=result.model,
        timings_ms={k: round(v, 3) for k, v in result.timings_ms.items()},
    )
