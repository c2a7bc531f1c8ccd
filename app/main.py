"""The ASGI application factory: ``uvicorn --factory app.main:create_app``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api import admin, captions, concepts, health, history, jobs
from app.core import wiring
from app.core.blob_gc import periodic_sweep
from app.core.logs import RequestIdMiddleware, configure_logging
from app.core.metrics import Metrics, MetricsMiddleware
from app.core.readiness import model_readiness_checks, preload_models
from app.core.runtime import build_runtime
from app.core.settings import Settings
from app.http.docs import install_docs
from app.http.limits import BodySizeLimitMiddleware
from app.http.middleware import SecurityHeadersMiddleware, UnhandledErrorMiddleware
from app.http.openapi import install_openapi, operation_id
from app.http.problems import install_problem_handlers
from app.http.ui import install_ui

log = logging.getLogger(__name__)

# Multipart framing plus the text fields (info is at most 2,000 characters).
_MULTIPART_OVERHEAD = 64 * 1024
_JSON_BODY_MAX = 64 * 1024
_ONE_PHOTO_ROUTES = ("/caption", "/retrieve")


def body_limit(settings: Settings) -> Callable[[str, str], int]:
    """The body cap of a request: what its route may legitimately carry, derived from the
    per-file cap times the photos the route takes; JSON routes get a small fixed cap."""
    upload = settings.upload
    one_photo = upload.max_bytes + _MULTIPART_OVERHEAD
    many_photos = upload.max_bytes * upload.max_images_per_concept + _MULTIPART_OVERHEAD
    album = upload.max_bytes * settings.jobs.max_photos + _MULTIPART_OVERHEAD

    def limit(method: str, path: str) -> int:
        if method != "POST":
            return _JSON_BODY_MAX
        if path.rstrip("/") in _ONE_PHOTO_ROUTES:
            return one_photo
        if path.startswith("/concepts"):
            return many_photos
        if path.rstrip("/") == "/caption-jobs":
            return album
        return _JSON_BODY_MAX

    return limit


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if settings.log_format != "inherit":
        configure_logging(settings.log_level, json=settings.log_format == "json")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch_threads = torch.get_num_threads()
        if settings.vlm.backend == "openai":
            # Torch here then only runs CLIP on one request's few crops, on the worker pool, so
            # concurrency comes from requests. A team of OpenMP threads per call stalls whenever
            # another request or a co-located vLLM holds a core (BENCHMARKS.md, captioning).
            torch.set_num_threads(1)
        runtime = build_runtime(settings, metrics)
        app.state.runtime = runtime
        runtime.readiness_checks.update(model_readiness_checks(runtime))
        preload = asyncio.create_task(preload_models(runtime)) if settings.preload_models else None
        blob_gc = (
            asyncio.create_task(periodic_sweep(runtime))
            if settings.storage.gc_interval_s > 0
            else None
        )
        jobs_task = None
        if settings.jobs.run_in_api:
            app.state.job_runner = wiring.job_runner(runtime, name="api")
            jobs_task = asyncio.create_task(runtime.job_queue.run_worker(app.state.job_runner))
        try:
            yield
        finally:
            if jobs_task is not None:
                app.state.job_runner.stop()
                await jobs_task
            for task in (preload, blob_gc):
                if task is not None:
                    task.cancel()
            await runtime.vlm.aclose()
            runtime.engine.dispose()
            torch.set_num_threads(torch_threads)

    app = FastAPI(
        title="RePIC personalized captioning",
        version="0.1.0",
        summary="Register personal concepts; get captions that name them.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    for router in (
        health.router,
        concepts.router,
        captions.retrieve_router,
        captions.caption_router,
        history.router,
        jobs.router,
        admin.router,
    ):
        app.include_router(router)
    install_openapi(app)
    install_docs(app)
    install_ui(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=body_limit(settings))
    # Added last = outermost: every response, a 413 from the guard and a last-resort 500
    # included, is counted, carries the security headers and the request id.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
