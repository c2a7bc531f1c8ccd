"""Liveness and readiness."""

from __future__ import annotations

import hmac
import shutil
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr
from sqlalchemy import text

from app.api.schemas import ComponentReadiness, Health, Readiness
from app.core.readiness import ComponentStatus, index_readiness
from app.core.runtime import Runtime
from app.http.deps import RuntimeDep, bearer
from app.http.problems import ProblemError, problem_responses

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: RuntimeDep, credentials: Credentials) -> JSONResponse:
    """Whether every dependency can serve: the database, free disk space, the index (no
    re-embedding pending) and the models. Details (hosts, paths, errors) only with the admin
    token."""
    components = {
        "database": await runtime.run(_database_ready, runtime),
        "disk": await runtime.run(_disk_ready, runtime),
    }
    for name, check in runtime.readiness_checks.items():
        components[name] = _public(await check())
    if components["database"].ready and components.get("embedder", _READY).ready:
        components["index"] = _public(await runtime.run(index_readiness, runtime))
    body = Readiness(ready=all(c.ready for c in components.values()), components=components)
    if not _bearer_is(credentials, runtime.settings.admin_token):
        body = Readiness(
            ready=body.ready,
            components={
                name: ComponentReadiness(
                    ready=c.ready, detail="ok" if c.ready else "not ready (details: admin token)"
                )
                for name, c in body.components.items()
            },
        )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **problem_responses(401),
    },
)
async def metrics(runtime: RuntimeDep, credentials: Credentials) -> Response:
    """Prometheus metrics: requests, per-stage latency, VLM errors, index sizes. Needs
    `Authorization: Bearer <REPIC_METRICS_TOKEN>` when that is set."""
    token = runtime.settings.metrics_token
    if token is not None and not _bearer_is(credentials, token):
        raise ProblemError(
            401,
            "unauthorized",
            "/metrics needs `Authorization: Bearer <REPIC_METRICS_TOKEN>`.",
            headers={"WWW-Authenticate": 'Bearer realm="repic-metrics"'},
        )
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)


_READY = ComponentReadiness(ready=True, detail="")


def _public(status: ComponentStatus) -> ComponentReadiness:
    return ComponentReadiness(ready=status.ready, detail=status.detail)


def _bearer_is(credentials: HTTPAuthorizationCredentials | None, secret: SecretStr) -> bool:
    return credentials is not None and hmac.compare_digest(
        credentials.credentials.encode(), secret.get_secret_value().encode()
    )


def _disk_ready(runtime: Runtime) -> ComponentReadiness:
    reserve = runtime.settings.min_free_disk_bytes
    try:
        free = shutil.disk_usage(runtime.settings.data_dir).free
    except OSError as exc:
        return ComponentReadiness(ready=False, detail=f"data directory unusable: {exc}"[:300])
    detail = f"{free:,} bytes free under the data directory (reserve {reserve:,})"
    if free < reserve:
        return ComponentReadiness(ready=False, detail=f"low disk space: {detail}")
    return ComponentReadiness(ready=True, detail=detail)


def _database_ready(runtime: Runtime) -> ComponentReadiness:
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:
        return ComponentReadiness(ready=False, detail=f"{exc.__class__.__name__}: {exc}"[:300])
    return ComponentReadiness(ready=True, detail=f"schema revision {revision}")
