"""Request and response models, one family per resource."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

INFO_MAX = 2000
CATEGORY_MAX = 64
ID_MAX = 2**63 - 1  # ids are 64-bit signed integers in the database


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
    """Fields to change; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=66)
    display_name: str | None = Field(
        default=None, max_length=66, description="Empty or null removes it."
    )
    info: str | None = Field(default=None, max_length=INFO_MAX)
    category: str | None = Field(default=None, max_length=CATEGORY_MAX)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")


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
