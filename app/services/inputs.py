"""What routes and the CLI hand to services, and what services hand back, as plain data.

The request schemas (pydantic, with the OpenAPI descriptions) stay in :mod:`app.api`; a route
turns its validated body into one of these, so services never depend on the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ConceptPatch:
    """The fields a request changes: a field absent from ``changes`` stays as it is; ``None``
    clears it (``name`` is never ``None``: the request schema refuses that)."""

    changes: Mapping[str, str | None]


@dataclass(frozen=True)
class Correction:
    """A correction of a kept caption (at least one field given; the request schema checks)."""

    present: list[int] | None = None
    wrong: list[int] | None = None
    caption: str | None = None
    rating: int | None = None


@dataclass(frozen=True)
class Taught:
    """A kept photo (or a crop of it) added to a concept's reference photos."""

    concept_id: int
    image_id: int | None
    box: list[int] | None
