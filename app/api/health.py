"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.deps import RuntimeDep
from app.runtime import Runtime
from app.schemas import ComponentReadiness, Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Whether every dependency can serve: the database (and the models, when configured)."""
    components = {"database": await runtime.run(_database_ready, runtime)}
    for name, check in runtime.readiness_checks.items():
        components[name] = await check()
    body = Readiness(ready=all(c.ready for c in components.values()), components=components)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: requests, per-stage latency, VLM errors, index sizes."""
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)


def _database_ready(runtime: Runtime) -> ComponentReadiness:
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:
        return ComponentReadiness(ready=False, detail=f"{exc.__class__.__name__}: {exc}"[:300])
    return ComponentReadiness(ready=True, detail=f"schema revision {revision}")
