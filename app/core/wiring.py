"""The services built from the runtime, each with exactly the collaborators it uses.

The composition roots (the dependencies of :mod:`app.http.deps`, the app's lifespan, the CLI)
build services here; no service sees the runtime, so a test builds one from fakes.
"""

from __future__ import annotations

from typing import TypeVar

from app.api.job_schemas import JOB_RESULTS
from app.core.runtime import Runtime
from app.services.capacity import DiskReserve
from app.services.captioning import CaptionService
from app.services.concepts import ConceptService
from app.services.embeddings import Embeddings
from app.services.history import HistoryService
from app.services.job_runner import JobCaptions, JobRunner
from app.services.jobs import JobService, job_blobs
from app.services.retrieval import RetrievalService
from app.services.streaming import StreamingCaptionService
from app.services.user_data import UserDataService
from app.services.users import UserService

C = TypeVar("C", bound=CaptionService)


def embeddings(rt: Runtime) -> Embeddings:
    return Embeddings(rt.embedder, rt.metrics)


def users(rt: Runtime) -> UserService:
    return UserService(rt.sessions, max_active_keys=rt.settings.quota.api_keys)


def user_data(rt: Runtime) -> UserDataService:
    return UserDataService(rt.sessions, rt.blobs, rt.vectors)


def concepts(rt: Runtime) -> ConceptService:
    cfg = rt.settings
    return ConceptService(
        rt.sessions,
        rt.blobs,
        embeddings(rt),
        rt.vectors,
        upload=cfg.upload,
        quota=cfg.quota,
        demo_max_pixels=cfg.vlm.demo_max_pixels,
        disk=DiskReserve(cfg.data_dir, cfg.min_free_disk_bytes),
    )


def retrieval(rt: Runtime) -> RetrievalService:
    return RetrievalService(
        rt.sessions,
        embeddings(rt),
        rt.vectors,
        regions=rt.settings.regions,
        max_images_per_concept=rt.settings.upload.max_images_per_concept,
        detector=rt.detector,
    )


def _caption_service(cls: type[C], rt: Runtime) -> C:
    return cls(
        retrieval(rt),
        sessions=rt.sessions,
        blobs=rt.blobs,
        vlm=rt.vlm,
        vlm_settings=rt.settings.vlm,
        metrics=rt.metrics,
        run=rt.run,
        caption_slots=rt.caption_slots,
        vlm_gate=rt.vlm_gate,
    )


def captions(rt: Runtime) -> CaptionService:
    return _caption_service(CaptionService, rt)


def streaming_captions(rt: Runtime) -> StreamingCaptionService:
    return _caption_service(StreamingCaptionService, rt)


def history(rt: Runtime) -> HistoryService:
    return HistoryService(
        rt.sessions, rt.blobs, concepts(rt), quota=rt.settings.quota, upload=rt.settings.upload
    )


def jobs(rt: Runtime) -> JobService:
    cfg = rt.settings
    return JobService(
        rt.sessions,
        job_blobs(cfg.data_dir),
        rt.job_queue,
        jobs=cfg.jobs,
        upload=cfg.upload,
        vlm_max_pixels=cfg.vlm.max_pixels,
        formats=JOB_RESULTS,
    )


def job_runner(rt: Runtime, name: str | None = None) -> JobRunner:
    cfg = rt.settings
    return JobRunner(
        _caption_service(JobCaptions, rt),
        job_blobs(cfg.data_dir),
        sessions=rt.sessions,
        run=rt.run,
        metrics=rt.metrics,
        jobs=cfg.jobs,
        upload=cfg.upload,
        defaults=cfg.retrieval,
        formats=JOB_RESULTS,
        name=name,
    )
