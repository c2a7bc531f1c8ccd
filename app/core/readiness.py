"""Readiness of the models and their optional background preload, alike for every model."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.api.schemas import ComponentReadiness
from app.core.runtime import Runtime
from model.lifecycle import ManagedModel, ModelUnavailable

log = logging.getLogger(__name__)


def model_readiness_checks(
    runtime: Runtime,
) -> dict[str, Callable[[], Awaitable[ComponentReadiness]]]:
    """One check per model of the runtime (looked up at each probe, so a swapped model counts)."""

    def check(name: str) -> Callable[[], Awaitable[ComponentReadiness]]:
        async def ready() -> ComponentReadiness:
            model = runtime.models()[name]
            # Without preloading, a model that is cheap to load is loaded here, so that a missing
            # checkpoint is reported, not hidden behind "loads on first use" (a failure is
            # remembered for a while). With preloading, the probe only reports, so it never
            # waits behind a download.
            if model.probe_loads and not runtime.settings.preload_models:
                try:
                    await model.aload()
                except ModelUnavailable as exc:
                    return ComponentReadiness(ready=False, detail=str(exc))
            state = await model.areadiness()
            return ComponentReadiness(ready=state.ready, detail=state.detail)

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
