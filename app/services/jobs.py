"""Caption jobs as use cases: submit an album, follow it, page its results, delete it.

A job's photos are validated at submission (a photo that cannot be decoded is recorded as
failed with its problem, the others run), stored as blobs, queued
(:mod:`app.services.job_queue`) in the transaction that writes the job, and captioned later by a
worker (:mod:`app.services.job_runner`), in the API process or in `repic worker` processes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from app.core.settings import JobSettings, RetrievalSettings, UploadSettings, VLMSettings
from app.services.captioning import CaptionRequest, CaptionResult
from app.services.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    TooLarge,
    TooMany,
    UnsupportedMedia,
)
from app.services.intake import decode_query
from app.services.job_queue import JobQueue
from model.prompt import PromptStyle
from store.blobs import BlobStore, LocalBlobStore
from store.db import transaction
from store.jobs import JOB_DONE, CaptionJob, JobRepository, NewItem, Progress

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


class JobOptions(BaseModel):
    """The caption options of every photo of a job (those of `POST /caption`)."""

    top_k: int | None = Field(None, ge=1, le=8)
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    concept_ids: list[int] | None = Field(None, max_length=8)
    instruction: str | None = Field(None, max_length=1000)
    max_tokens: int | None = Field(None, ge=1, le=1024)
    prompt_style: PromptStyle = PromptStyle.REPIC

    def request(self, retrieval: RetrievalSettings, vlm: VLMSettings) -> CaptionRequest:
        """The caption request with the configured defaults filled in."""
        return CaptionRequest.from_settings(
            retrieval,
            vlm,
            top_k=self.top_k,
            min_score=self.min_score,
            concept_ids=self.concept_ids,
            instruction=self.instruction,
            max_tokens=self.max_tokens,
            style=self.prompt_style,
        )


@dataclass(frozen=True)
class JobView:
    job: CaptionJob
    progress: Progress
    eta_s: float | None


@dataclass(frozen=True)
class JobResults:
    """How a photo's outcome is stored: as the body the API answers with, the caption of
    `POST /caption` or a problem. The API layer supplies both, so that no service speaks HTTP."""

    caption: Callable[[CaptionResult], str]
    problem: Callable[[DomainError], str]


def job_blobs(data_dir: Path) -> BlobStore:
    """Where job photos are kept: apart from concept photos, so deleting a job's photos never
    touches a reference image with the same bytes."""
    return LocalBlobStore(data_dir / "job-photos")


def unzip_photos(data: bytes, *, max_bytes: int, max_files: int) -> list[tuple[str, bytes]]:
    """The image files of a zip archive, in archive order (other members are ignored)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UnsupportedMedia("bad-archive", f"The archive is not a zip file: {exc}") from exc
    photos: list[tuple[str, bytes]] = []
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or not name.lower().endswith(_IMAGE_SUFFIXES):
            continue
        if "__MACOSX/" in name or name.rsplit("/", 1)[-1].startswith("."):
            continue
        if len(photos) == max_files:
            raise _too_many(max_files)
        if info.file_size > max_bytes:
            raise TooLarge(
                "image-too-large",
                f"{name} in the archive is larger than {max_bytes:,} bytes; downscale it.",
            )
        photos.append((name, archive.read(info)))
    return photos


def _too_many(limit: int) -> TooLarge:
    return TooLarge(
        "too-many-photos",
        f"A job takes at most {limit} photos (REPIC_JOBS__MAX_PHOTOS); split the album.",
    )


class JobService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        job_queue: JobQueue,
        *,
        jobs: JobSettings,
        upload: UploadSettings,
        vlm_max_pixels: int,
        formats: JobResults,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.job_queue = job_queue
        self.jobs = jobs
        self.upload = upload
        self.vlm_max_pixels = vlm_max_pixels
        self.formats = formats

    def submit(
        self, user_id: int, photos: Sequence[tuple[str, bytes]], options: JobOptions
    ) -> JobView:
        """Validate and store the photos, then queue the job (blocking: run it off the loop)."""
        cfg = self.jobs
        if not photos:
            raise InvalidInput("no-photos", "Send photos as `images` files and/or a zip `archive`.")
        if len(photos) > cfg.max_photos:
            raise _too_many(cfg.max_photos)
        # Per-user limits: the same transaction counts the user's unfinished jobs.
        with transaction(self.sessions) as session:
            active = JobRepository(session).active_count(user_id)
        if active >= cfg.max_active_per_user:
            raise TooMany(
                "too-many-jobs",
                f"You have {active} unfinished jobs (at most {cfg.max_active_per_user}); wait for "
                "one to finish or delete one.",
                retry_after_s=60,
            )
        items = [self._item(name, data) for name, data in photos]
        with transaction(self.sessions) as session:
            job = JobRepository(session).create(
                user_id, options.model_dump_json(exclude_none=True), items
            )
            self.job_queue.enqueue(session, job.id)
        return self.view(user_id, job.id)

    def _item(self, filename: str, data: bytes) -> NewItem:
        limits = self.upload
        try:
            decode_query(
                filename,
                data,
                max_pixels=limits.max_pixels,
                vlm_max_pixels=self.vlm_max_pixels,
                clip_min_side=1,
            )
        except DomainError as exc:
            return NewItem(filename=filename, blob_key=None, problem=self.formats.problem(exc))
        return NewItem(filename=filename, blob_key=self.blobs.put(data))

    def view(self, user_id: int, job_id: str) -> JobView:
        """The user's job with its progress and an estimate of the time left (404 otherwise)."""
        with self.sessions() as session:
            repo = JobRepository(session)
            job = repo.get(user_id, job_id)
            if job is None:
                raise _job_not_found(job_id)
            progress = repo.progress(job_id)
        return JobView(job, progress, _eta(job, progress))

    def list_jobs(self, user_id: int, *, offset: int, limit: int) -> tuple[list[JobView], int]:
        """The user's jobs, newest first."""
        with self.sessions() as session:
            repo = JobRepository(session)
            jobs, count = repo.list_jobs(user_id, offset=offset, limit=limit)
            views = [JobView(j, p := repo.progress(j.id), _eta(j, p)) for j in jobs]
        return views, count

    def results(
        self, user_id: int, job_id: str, *, offset: int, limit: int
    ) -> tuple[list[dict[str, object]], int]:
        """One entry per photo in submission order: its caption, its problem, or its state."""
        with self.sessions() as session:
            repo = JobRepository(session)
            job = repo.get(user_id, job_id)
            if job is None:
                raise _job_not_found(job_id)
            rows = repo.results(job_id, offset=offset, limit=limit)
        out: list[dict[str, object]] = []
        for row in rows:
            entry: dict[str, object] = {
                "index": row.position,
                "filename": row.filename,
                "status": row.status,
            }
            if row.result is not None:
                entry["caption" if row.status == "done" else "problem"] = json.loads(row.result)
            out.append(entry)
        return out, job.total

    def delete(self, user_id: int, job_id: str) -> None:
        """Cancel and remove the job; its photos' files go once no other job uses them."""
        with transaction(self.sessions) as session:
            repo = JobRepository(session)
            keys = repo.delete(user_id, job_id)
            if keys is None:
                raise _job_not_found(job_id)
            orphans = set(keys) - repo.referenced(keys)
        for key in orphans:
            self.blobs.delete(key)


def _job_not_found(job_id: str) -> NotFound:
    return NotFound(
        "not-found", f"You have no caption job {job_id}; list yours with GET /caption-jobs."
    )


def _eta(job: CaptionJob, progress: Progress) -> float | None:
    """Seconds left at the pace of the photos finished so far; None before the first."""
    if job.status == JOB_DONE:
        return 0.0
    finished = progress.finished
    if finished == 0:
        return None
    elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
    return round(elapsed / finished * (progress.total - finished), 1)
