"""Readiness of the models and their optional background preload, alike for every model."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.core.runtime import Runtime
from model.embedder import EmbedderUnavailable
from model.lifecycle import ManagedModel, ModelUnavailable
from store.repositories import ConceptRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentStatus:
    """Whether one dependency can serve, and why not (`GET /readyz` shows it to admins)."""

    ready: bool
    detail: str


def model_readiness_checks(
    runtime: Runtime,
) -> dict[str, Callable[[], Awaitable[ComponentStatus]]]:
    """One check per model of the runtime (looked up at each probe, so a swapped model counts)."""

    def check(name: str) -> Callable[[], Awaitable[ComponentStatus]]:
        async def ready() -> ComponentStatus:
            model = runtime.models()[name]
            # Without preloading, a model that is cheap to load is loaded here, so that a missing
            # checkpoint is reported, not hidden behind "loads on first use" (a failure is
            # remembered for a while). With preloading, the probe only reports, so it never
            # waits behind a download.
            if model.probe_loads and not runtime.settings.preload_models:
                try:
                    await model.aload()
                except ModelUnavailable as exc:
                    return ComponentStatus(ready=False, detail=str(exc))
            state = await model.areadiness()
            return ComponentStatus(ready=state.ready, detail=state.detail)

        return ready

    return {name: check(name) for name in runtime.models()}


async def preload_models(runtime: Runtime) -> None:
    """Load every model in turn (embedder, detector, VLM), logging (not raising) what fails."""
    for name, model in runtime.models().items():
        await _preload(name, model)


async def _preload(name: str, model: ManagedModel) -> None:
    try:
        await model.aload()
    except ModelUnavailable as exc:
        log.error("%s unavailable: %s", name, exc)
        return
    log.info("%s loaded: %s", name, (await model.areadiness()).detail)


def index_readiness(runtime: Runtime) -> ComponentStatus:
    """Whether every stored vector is from the configured embedder (else `repic reindex`)."""
    try:
        embedder_id = runtime.embedder.model_id
    except EmbedderUnavailable as exc:
        return ComponentStatus(ready=False, detail=str(exc)[:300])
    try:
        with runtime.sessions() as session:
            stale = ConceptRepository(session).images_needing_embedding(embedder_id, limit=1)
    except Exception as exc:
        return ComponentStatus(ready=False, detail=f"{exc.__class__.__name__}"[:300])
    if stale:
        return ComponentStatus(
            ready=False,
            detail=f"reindex required: images embedded by another model than {embedder_id}; "
            "run `repic reindex` (until then retrieval answers 503)",
        )
    return ComponentStatus(ready=True, detail=f"every vector is from {embedder_id}")
