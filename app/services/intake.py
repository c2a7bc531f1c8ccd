"""Photos in: bytes (from an upload, an archive, a kept caption) turned into normalised
reference images or a decoded query photo, with each refusal as a domain error naming the file."""

from __future__ import annotations

from collections.abc import Sequence

from app.services.errors import DomainError, InvalidInput, TooLarge, UnsupportedMedia
from model.images import (
    ImageError,
    ImageTooLarge,
    NormalizedImage,
    UnsupportedImageType,
    UnusableImageShape,
    header_pixels,
    normalize_image,
)
from model.photos import QueryPhoto, prepare_query


def normalize_uploads(
    payloads: Sequence[tuple[str, bytes]],
    *,
    max_pixels: int,
    max_side: int | None,
    max_request_pixels: int | None = None,
) -> list[NormalizedImage]:
    """Normalise every (filename, bytes) pair; the first bad file fails the whole request.

    ``max_request_pixels`` bounds the pixels decoded for the whole request, judged from the
    headers before anything is decoded (decoding costs CPU per pixel, not per byte sent)."""
    _check_request_pixels([data for _, data in payloads], max_request_pixels)
    images = []
    for filename, data in payloads:
        try:
            images.append(
                normalize_image(data, max_pixels=max_pixels, max_side=max_side, keep_pixels=True)
            )
        except ImageError as exc:
            raise image_refused(filename, exc) from exc
    return images


def decode_query(
    filename: str,
    data: bytes,
    *,
    max_pixels: int,
    vlm_max_pixels: int,
    clip_min_side: int,
    max_request_pixels: int | None = None,
) -> QueryPhoto:
    """Decode a query photo once into what retrieval and the prompt need (or a problem)."""
    _check_request_pixels([data], max_request_pixels)
    try:
        return prepare_query(
            data,
            max_pixels=max_pixels,
            vlm_max_pixels=vlm_max_pixels,
            clip_min_side=clip_min_side,
        )
    except ImageError as exc:
        raise image_refused(filename, exc) from exc


def image_refused(filename: str, exc: ImageError) -> DomainError:
    """The domain error for an image that cannot be accepted, naming the file."""
    detail = f"{filename or '(unnamed)'}: {exc}"
    if isinstance(exc, UnsupportedImageType):
        return UnsupportedMedia("unsupported-image-type", detail)
    if isinstance(exc, ImageTooLarge):
        return TooLarge("image-too-large", detail)
    if isinstance(exc, UnusableImageShape):
        return InvalidInput("image-shape", detail)
    return InvalidInput("invalid-image", detail)


def _check_request_pixels(payloads: Sequence[bytes], max_request_pixels: int | None) -> None:
    """Refuse (413) a request whose images decode to too many pixels, judged from the headers
    before anything is decoded (decoding costs CPU per pixel, not per byte sent)."""
    if max_request_pixels is None:
        return
    total = sum(header_pixels(data) for data in payloads)
    if total > max_request_pixels:
        raise TooLarge(
            "request-too-many-pixels",
            f"The images of this request decode to {total:,} pixels; the limit per request "
            f"is {max_request_pixels:,}. Send fewer or smaller images.",
        )
