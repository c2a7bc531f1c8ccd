"""The composition root's object graph: one per app, kept on ``app.state.runtime``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.metrics import Metrics
from app.core.quotas import CaptionSlots, FairGate, RateLimiter
from app.core.settings import Settings, StorageSettings, VLMSettings
from app.services.embeddings import Embeddings
from app.services.job_queue import JobQueue, build_job_queue
from app.services.vectors import VectorStore
from model.embedder import ClipEmbedder
from model.lifecycle import ManagedModel
from model.regions import Owlv2Proposer
from model.vlm.base import VLMBackend
from store.blobs import BlobStore, LocalBlobStore
from store.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from app.core.readiness import ComponentStatus

T = TypeVar("T")


@dataclass
class Runtime:
    """Settings, database, blobs, models and the bounded worker pool for blocking work."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    embedder: ClipEmbedder
    vectors: VectorStore
    vlm: VLMBackend
    metrics: Metrics
    detector: Owlv2Proposer | None = None
    readiness_checks: dict[str, Callable[[], Awaitable[ComponentStatus]]] = field(
        default_factory=dict
    )
    limiter: anyio.CapacityLimiter = field(init=False)
    rate_limiter: RateLimiter = field(init=False)
    caption_slots: CaptionSlots = field(init=False)
    vlm_gate: FairGate = field(init=False)
    job_queue: JobQueue = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.settings.workers)
        quota = self.settings.quota
        self.rate_limiter = RateLimiter(quota.requests_per_minute, quota.request_burst)
        self.caption_slots = CaptionSlots(quota.concurrent_captions)
        # The in-process backend generates one caption at a time: one turn to hand out fairly.
        vlm = self.settings.vlm
        self.vlm_gate = FairGate(vlm.max_concurrency if vlm.backend == "openai" else 1)
        self.job_queue = build_job_queue(self.settings)

    def models(self) -> dict[str, ManagedModel]:
        """Every model this runtime serves with, by readiness component name."""
        found: dict[str, ManagedModel] = {"embedder": self.embedder}
        if self.detector is not None:
            found["detector"] = self.detector
        found["vlm"] = self.vlm
        return found

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run blocking work (decode, embed, SQL, FAISS) in the bounded pool, off the loop."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.limiter)


def build_vlm(settings: VLMSettings) -> VLMBackend:
    """The configured VLM backend; neither loads nor connects until first used."""
    if settings.backend == "openai":
        from model.vlm.openai_backend import OpenAIBackend

        return OpenAIBackend(
            settings.model,
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value(),
            repetition_penalty=settings.repetition_penalty,
            timeout_s=settings.timeout_s,
            max_concurrency=settings.max_concurrency,
            connect_retries=settings.connect_retries,
        )
    from model.vlm.transformers_backend import TransformersBackend

    return TransformersBackend(
        settings.model,
        repetition_penalty=settings.repetition_penalty,
        max_pixels=settings.max_pixels,
        timeout_s=settings.timeout_s,
        adapter=settings.adapter,
    )


def build_blob_store(settings: StorageSettings, blob_dir: Path) -> BlobStore:
    """The configured blob store; the S3 client connects on first use."""
    if settings.backend == "local":
        return LocalBlobStore(blob_dir)
    from store.s3blobs import S3BlobStore

    return S3BlobStore(
        settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=_secret(settings.s3_access_key_id),
        secret_access_key=_secret(settings.s3_secret_access_key),
        addressing_style=settings.s3_addressing_style,
        timeout_s=settings.s3_timeout_s,
        max_attempts=settings.s3_max_attempts,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() or None if value is not None else None


def build_runtime(
    settings: Settings, metrics: Metrics | None = None, vlm: VLMBackend | None = None
) -> Runtime:
    """Open the database and the data directory (migrations were applied before start)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    metrics = metrics or Metrics()
    cfg = settings.embedder
    embedder = ClipEmbedder(cfg.model, cfg.pretrained, cfg.device, cfg.batch_size)
    detector = None
    if settings.regions.detector == "owlv2":
        detector = Owlv2Proposer(
            settings.regions.detector_model, settings.regions.detector_threshold
        )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        blobs=build_blob_store(settings.storage, settings.blob_dir),
        embedder=embedder,
        vectors=VectorStore(
            Embeddings(embedder, metrics), settings.index_dir, sessions, metrics, settings.index
        ),
        vlm=vlm or build_vlm(settings.vlm),
        metrics=metrics,
        detector=detector,
    )
