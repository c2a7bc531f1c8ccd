"""`/concepts`: a user's personal concepts and their reference images."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)

from app.api.schemas import (
    CATEGORY_MAX,
    ID_MAX,
    INFO_MAX,
    ConceptPublic,
    ConceptsPublic,
    ConceptUpdate,
    PlainText,
)
from app.core.runtime import Runtime
from app.http.deps import ConceptServiceDep, CurrentUser, RuntimeDep
from app.http.problems import ProblemError, problem_responses
from app.http.uploads import read_upload, single_valued
from app.services.concepts import StoredImage
from app.services.inputs import ConceptPatch
from app.services.intake import normalize_uploads
from model.images import NormalizedImage

router = APIRouter(prefix="/concepts", tags=["concepts"])

# Bounded to the database's 64-bit ids, so a huge id is a 422 problem, not a driver overflow.
ConceptId = Annotated[int, Path(ge=1, le=ID_MAX, description="A concept's id")]
ImageId = Annotated[int, Path(ge=1, le=ID_MAX, description="A reference image's id")]

_AUTH = problem_responses(401, 404, 422, 429)
# 400: a body that is not parseable multipart at all.
_UPLOAD = problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503)


async def _read_images(runtime: Runtime, files: list[UploadFile]) -> list[NormalizedImage]:
    limits = runtime.settings.upload
    payloads = [(f.filename or "", await read_upload(f, limits.max_bytes)) for f in files]
    return await runtime.run(
        normalize_uploads,
        payloads,
        max_pixels=limits.max_pixels,
        max_side=limits.store_max_side,
        max_request_pixels=limits.max_request_pixels,
    )


def _check_count(runtime: Runtime, files: list[UploadFile]) -> None:
    limit = runtime.settings.upload.max_images_per_concept
    if not 1 <= len(files) <= limit:
        raise ProblemError(
            422, "image-count", f"Send between 1 and {limit} images; got {len(files)}."
        )


@router.post(
    "",
    response_model=ConceptPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_UPLOAD,
    dependencies=[Depends(single_valued("name", "info", "category"))],
)
async def create_concept(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    name: Annotated[str, Form(min_length=1, max_length=66, description="e.g. `bo` or `<bo>`")],
    images: Annotated[list[UploadFile], File(description="1-10 reference photos")],
    info: Annotated[PlainText, Form(max_length=INFO_MAX)] = "",
    category: Annotated[PlainText | None, Form(max_length=CATEGORY_MAX)] = None,
    display_name: Annotated[
        str | None,
        Form(max_length=66, description="Shown to the model instead of the name, e.g. `Iron Man`"),
    ] = None,
) -> ConceptPublic:
    """Register a concept with its reference photos (`<bo>` and `bo` are the same name)."""
    _check_count(runtime, images)
    normalized = await _read_images(runtime, images)
    concept = await runtime.run(
        lambda: concepts.create(
            user.id,
            name=name,
            info=info,
            category=category,
            images=normalized,
            display_name=display_name,
        )
    )
    return ConceptPublic.model_validate(concept)


@router.get("", response_model=ConceptsPublic, responses=problem_responses(401, 422, 429))
async def list_concepts(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    name: Annotated[str | None, Query(max_length=66, description="Exact name")] = None,
) -> ConceptsPublic:
    """Your concepts, oldest first; `name` finds one by name (case-insensitive)."""
    rows, count = await runtime.run(
        lambda: concepts.page(user.id, offset=offset, limit=limit, name=name)
    )
    return ConceptsPublic(data=[ConceptPublic.model_validate(r) for r in rows], count=count)


@router.get("/{concept_id}", response_model=ConceptPublic, responses=_AUTH)
async def get_concept(
    runtime: RuntimeDep, user: CurrentUser, concepts: ConceptServiceDep, concept_id: ConceptId
) -> ConceptPublic:
    """One of your concepts."""
    concept = await runtime.run(concepts.get, user.id, concept_id)
    return ConceptPublic.model_validate(concept)


@router.patch(
    "/{concept_id}",
    response_model=ConceptPublic,
    responses=problem_responses(400, 401, 404, 409, 422, 429),
)
async def update_concept(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    concept_id: ConceptId,
    patch: ConceptUpdate,
) -> ConceptPublic:
    """Rename a concept or change its info or category.

    Omitted fields stay as they are; `null` clears a field (`info` becomes empty, `category`
    none); `name` cannot be cleared."""
    changes = ConceptPatch(patch.model_dump(exclude_unset=True))
    concept = await runtime.run(concepts.update, user.id, concept_id, changes)
    return ConceptPublic.model_validate(concept)


@router.delete("/{concept_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_AUTH)
async def delete_concept(
    runtime: RuntimeDep, user: CurrentUser, concepts: ConceptServiceDep, concept_id: ConceptId
) -> Response:
    """Delete a concept, its images and its vectors."""
    await runtime.run(concepts.delete, user.id, concept_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{concept_id}/images",
    response_model=ConceptPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_UPLOAD,
)
async def add_concept_images(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    concept_id: ConceptId,
    images: Annotated[list[UploadFile], File(description="Photos to add")],
) -> ConceptPublic:
    """Add reference photos (an identical photo already attached is ignored)."""
    _check_count(runtime, images)
    normalized = await _read_images(runtime, images)
    concept = await runtime.run(concepts.add_images, user.id, concept_id, normalized)
    return ConceptPublic.model_validate(concept)


@router.get(
    "/{concept_id}/images/{image_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The stored, re-encoded image"},
        304: {"description": "Not Modified: the `If-None-Match` ETag is current"},
        **_AUTH,
        **problem_responses(503),
    },
)
async def get_concept_image(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    concept_id: ConceptId,
    image_id: ImageId,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """The stored copy: upright, RGB, re-encoded without any metadata."""
    stored = await runtime.run(concepts.image, user.id, concept_id, image_id)
    return _cached_image(stored, if_none_match)


def _cached_image(stored: StoredImage, if_none_match: str | None) -> Response:
    """The image with its content hash as ETag, or 304 when the caller holds it already."""
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(stored.data, media_type=stored.mime, headers=headers)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (``*`` matches anything)."""
    candidates = {c.strip().removeprefix("W/") for c in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


@router.get(
    "/{concept_id}/images/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A small JPEG made at upload"},
        304: {"description": "The thumbnail named in If-None-Match is still current"},
        **_AUTH,
        **problem_responses(503),
    },
)
async def get_concept_image_thumbnail(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    concept_id: ConceptId,
    image_id: ImageId,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """A thumbnail of the photo (longer side REPIC_UPLOAD__THUMBNAIL_SIDE), for lists."""
    stored = await runtime.run(concepts.thumbnail, user.id, concept_id, image_id)
    return _cached_image(stored, if_none_match)


@router.delete(
    "/{concept_id}/images/{image_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 422, 429),
)
async def delete_concept_image(
    runtime: RuntimeDep,
    user: CurrentUser,
    concepts: ConceptServiceDep,
    concept_id: ConceptId,
    image_id: ImageId,
) -> Response:
    """Remove one photo; a concept keeps at least one (409)."""
    await runtime.run(concepts.delete_image, user.id, concept_id, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
