"""Reading multipart files with a per-file cap, and refusing repeated form fields.

Turning the bytes into images is the services' intake (:mod:`app.services.intake`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, UploadFile

from app.http.problems import ProblemError
from app.services.errors import TooLarge

_CHUNK = 1 << 20


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """Read one uploaded file, refusing (413) as soon as it passes ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(
                "image-too-large",
                f"The file {upload.filename or '(unnamed)'} is larger than {max_bytes:,} bytes; "
                "downscale or recompress it.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def single_valued(*fields: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing (422) a multipart body that repeats any of ``fields``: the framework
    would silently keep one of the values, and which one the caller meant is unknowable."""

    async def check(request: Request) -> None:
        form = await request.form()  # parsed once per request; the route reuses it
        repeated = [f for f in fields if len(form.getlist(f)) > 1]
        if repeated:
            raise ProblemError(
                422,
                "repeated-field",
                f"The form field(s) {', '.join(repeated)} were sent more than once; send each "
                "once.",
                errors=[
                    {"loc": ["body", f], "msg": "repeated", "type": "repeated"} for f in repeated
                ],
            )

    return check
