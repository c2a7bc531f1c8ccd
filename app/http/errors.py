"""The error the HTTP layer (routes, auth, guards) raises to answer with a problem document.

Services raise the domain errors of :mod:`app.services.errors` instead;
``app.http.problems`` renders both as RFC 9457 ``application/problem+json``.
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
