"""The error a request raises to answer with a problem document, without the web framework.

Pure Python so that services and the command line can raise and catch it without importing
FastAPI; ``app.problems`` renders it as RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def not_found(what: str) -> ProblemError:
    """The 404 problem for something that does not exist or belongs to another user."""
    return ProblemError(404, "not-found", f"{what} does not exist (or is not yours).")
