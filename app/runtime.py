"""The composition root's object graph: one per app, kept on ``app.state.runtime``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.metrics import Metrics
from app.schemas import ComponentReadiness
from app.settings import Settings
from store.blobs import BlobStore

T = TypeVar("T")


@dataclass
class Runtime:
    """Settings, database, blob store and the bounded worker pool for blocking work."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    metrics: Metrics = field(default_factory=Metrics)
    readiness_checks: dict[str, Callable[[], Awaitable[ComponentReadiness]]] = field(
        default_factory=dict
    )
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.settings.workers)

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run blocking work (decode, embed, SQL, FAISS) in the bounded pool, off the loop."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.limiter)
