"""Readiness of the models and their optional background preload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.runtime import Runtime
from app.schemas import ComponentReadiness
from model.embedder import EmbedderUnavailable
from model.vlm.base import VLMError

log = logging.getLogger(__name__)


def model_readiness_checks(
    runtime: Runtime,
) -> dict[str, Callable[[], Awaitable[ComponentReadiness]]]:
    async def embedder() -> ComponentReadiness:
        # Without preloading, the load is attempted here so that a missing checkpoint is
        # reported, not hidden behind "loads on first use" (a failure is cached for a minute).
        # With preloading, the probe only reports, so it never waits behind a download.
        if not runtime.settings.preload_models:
            try:
                await runtime.run(runtime.vectors.embedder.load)
            except EmbedderUnavailable as exc:
                return ComponentReadiness(ready=False, detail=str(exc))
        state = runtime.vectors.embedder.readiness()
        return ComponentReadiness(ready=state.ready, detail=state.detail)

    async def vlm() -> ComponentReadiness:
        state = await runtime.vlm.readiness()
        return ComponentReadiness(ready=state.ready, detail=state.detail)

    return {"embedder": embedder, "vlm": vlm}


async def preload_models(runtime: Runtime) -> None:
    """Load the embedder, then the VLM, logging (not raising) what fails."""
    try:
        await runtime.run(runtime.vectors.embedder.load)
        log.info("embedder loaded: %s", runtime.vectors.embedder.readiness().detail)
    except EmbedderUnavailable as exc:
        log.error("embedder unavailable: %s", exc)
    load = getattr(runtime.vlm, "load", None)
    if load is None:
        return
    try:
        await load()
        log.info("VLM loaded: %s", runtime.vlm.model_name)
    except VLMError as exc:
        log.error("VLM unavailable: %s", exc)
