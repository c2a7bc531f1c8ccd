"""An app stopped right after it started stops its procrastinate worker.

A cancellation that reached procrastinate's worker while it started, or the stalled-job rescuer
inside one of its queries, could be absorbed there; the app's shutdown then waited forever (seen
as a hung suite). Without the repeated cancellation, 1 to 2 of these 60 start-stops hung in each
of three runs; the race needs the repetitions.
"""

from __future__ import annotations

import asyncio

import pytest

from app.core.migrate import upgrade
from app.core.settings import Settings
from app.main import create_app


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.mark.parametrize("pause_ms", [0, 10, 20, 30, 40] * 12)
async def test_an_app_stopped_at_once_stops_its_queue_worker(
    settings: Settings, pause_ms: int
) -> None:
    upgrade(settings.database_url)
    application = create_app(settings)

    async def start_and_stop() -> None:
        async with application.router.lifespan_context(application):
            queue = application.state.runtime.job_queue
            assert type(queue).__name__ == "ProcrastinateJobQueue"
            await asyncio.sleep(pause_ms / 1000)

    await asyncio.wait_for(start_and_stop(), timeout=30)
