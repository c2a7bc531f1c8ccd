"""RFC 9457 problem details: every 4xx/5xx answer is ``application/problem+json``.

``type`` is a stable URN per kind of problem (documented in the README); ``detail`` tells the
caller what to do. This is the one place where the domain errors of :mod:`app.services.errors`
become HTTP statuses and headers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

# Defined without FastAPI; re-exported for the API.
from app.http.errors import ProblemError as ProblemError
from app.services.errors import (
    Conflict,
    DomainError,
    Failed,
    InvalidInput,
    NotFound,
    NotSupported,
    TooLarge,
    TooMany,
    Unavailable,
    UnsupportedMedia,
    UpstreamRefused,
    UpstreamTimeout,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:repic:problem:"

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    501: "Not Implemented",
    504: "Gateway Timeout",
}


class FieldError(BaseModel):
    """One invalid field of a validation problem."""

    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field.")
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error response (RFC 9457)."""

    type: str = Field(examples=[f"{TYPE_PREFIX}not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors of a validation problem."
    )


_DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    UnsupportedMedia: 415,
    TooLarge: 413,
    TooMany: 429,
    Unavailable: 503,
    NotSupported: 501,
    UpstreamRefused: 502,
    UpstreamTimeout: 504,
    Failed: 500,
}


def as_problem(exc: DomainError) -> ProblemError:
    """The problem a domain error answers with: its status, type, detail and headers."""
    status = next((s for cls, s in _DOMAIN_STATUS.items() if isinstance(exc, cls)), 500)
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return ProblemError(status, exc.kind, exc.detail, headers=headers, errors=exc.errors)


def problem_json(exc: DomainError) -> str:
    """A domain error as the problem JSON a job result or a stream event carries."""
    problem = as_problem(exc)
    return Problem(
        type=f"{TYPE_PREFIX}{problem.kind}",
        title=status_title(problem.status),
        status=problem.status,
        detail=problem.detail,
    ).model_dump_json(exclude_none=True)


def status_title(status: int) -> str:
    """The ``title`` of a problem with this status."""
    return _TITLES.get(status, "Error")


def problem_response(
    request: Request,
    status: int,
    kind: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_PREFIX + kind,
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=None if errors is None else [FieldError.model_validate(e) for e in errors],
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring problem documents for these statuses."""
    return {
        s: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": _TITLES[s]}
        for s in statuses
    }


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route fully matches for this path (asked of the router itself)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Map our errors, FastAPI's and the database's onto problem documents."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            request, exc.status, exc.kind, exc.detail, headers=exc.headers, errors=exc.errors
        )

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return await on_problem(request, as_problem(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
        return problem_response(
            request,
            422,
            "validation-error",
            f"The request is invalid ({fields}); fix the listed fields and retry.",
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such route; see /docs for the API."
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; a path served by
            # several routes (GET, PATCH and DELETE of one concept) must list them all.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use one of {', '.join(allowed)}."
        return problem_response(request, exc.status_code, kind, detail, headers=headers)

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc.__class__.__name__)
        return problem_response(
            request,
            503,
            "database-unavailable",
            "The database is unreachable; nothing was changed. Retry shortly; operators: "
            "check REPIC_DATABASE_URL and that the database server is up.",
            headers={"Retry-After": "5"},
        )

    async def on_overflow(request: Request, exc: Exception) -> JSONResponse:
        # SQLite refuses to bind an integer beyond 64 bits; such an id names nothing.
        if "SQLite INTEGER" not in str(exc):
            raise exc
        return problem_response(
            request, 404, "not-found", "No object has this id (ids are 64-bit integers)."
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(OverflowError, on_overflow)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OperationalError, on_database_down)
