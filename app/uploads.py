"""Reading multipart files with a per-file cap and turning them into normalised images."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import UploadFile

from app.problems import ProblemError
from model.images import ImageError, NormalizedImage, normalize_image
from model.photos import QueryPhoto, prepare_query

_CHUNK = 1 << 20


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """Read one uploaded file, refusing (413) as soon as it passes ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ProblemError(
                413,
                "image-too-large",
                f"The file {upload.filename or '(unnamed)'} is larger than {max_bytes:,} bytes; "
                "downscale or recompress it.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def normalize_uploads(
    payloads: Sequence[tuple[str, bytes]], *, max_pixels: int, max_side: int | None
) -> list[NormalizedImage]:
    """Normalise every (filename, bytes) pair; the first bad file fails the whole request."""
    images = []
    for filename, data in payloads:
        try:
            images.append(
                normalize_image(data, max_pixels=max_pixels, max_side=max_side, keep_pixels=True)
            )
        except ImageError as exc:
            raise ProblemError(exc.status, exc.kind, f"{filename or '(unnamed)'}: {exc}") from exc
    return images


def decode_query(
    filename: str, data: bytes, *, max_pixels: int, vlm_max_pixels: int, clip_min_side: int
) -> QueryPhoto:
    """Decode a query photo once into what retrieval and the prompt need (or a problem)."""
    try:
        return prepare_query(
            data,
            max_pixels=max_pixels,
            vlm_max_pixels=vlm_max_pixels,
            clip_min_side=clip_min_side,
        )
    except ImageError as exc:
        raise ProblemError(exc.status, exc.kind, f"{filename or '(unnamed)'}: {exc}") from exc
