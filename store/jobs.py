"""Caption jobs: the job and its photos are rows, the only record of what is left to do.

Workers claim photos with a lease (a guarded ``UPDATE``: the row is theirs only if it was still
pending, or its lease had run out), and record a result only while they still hold the claim.
Every process on SQLite or PostgreSQL follows the same protocol, so a photo gets exactly one
recorded result however many workers run and whichever of them is killed; a claim whose worker
died is taken again once its lease has run out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.models import Base, BigId, UTCDateTime, utcnow

JOB_QUEUED = "queued"
JOB_DONE = "done"
ITEM_PENDING = "pending"
ITEM_RUNNING = "running"
ITEM_DONE = "done"
ITEM_FAILED = "failed"


class CaptionJob(Base):
    __tablename__ = "caption_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=JOB_QUEUED)
    #: The caption options (JSON), as the submitter gave them.
    options: Mapped[str] = mapped_column(Text, default="{}")
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CaptionJobItem(Base):
    __tablename__ = "caption_job_items"
    __table_args__ = (Index("ix_caption_job_items_claim", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("caption_jobs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    #: The photo as uploaded; NULL when it was refused at submission.
    blob_key: Mapped[str | None] = mapped_column(String(80), default=None)
    status: Mapped[str] = mapped_column(String(16), default=ITEM_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: JSON of the caption (done) or of the problem (failed).
    result: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


@dataclass(frozen=True)
class NewItem:
    """One submitted photo: stored (``blob_key``) or refused (``problem`` JSON)."""

    filename: str
    blob_key: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A photo a worker now holds: the claim token guards the result it records."""

    item_id: int
    job_id: str
    user_id: int
    blob_key: str
    filename: str
    options: str
    claim: str


@dataclass(frozen=True)
class Progress:
    """Counts of a job's photos by state."""

    total: int
    done: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        """Photos with a recorded result, caption or problem."""
        return self.done + self.failed


class JobRepository:
    """Jobs scoped by owner, and the claim protocol workers use."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, user_id: int, options: str, items: Sequence[NewItem]) -> CaptionJob:
        """Insert a job and its photos (the caller commits); refused photos are failed already."""
        now = utcnow()
        job = CaptionJob(id=uuid.uuid4().hex, user_id=user_id, options=options, total=len(items))
        self.session.add(job)
        self.session.flush()
        for position, item in enumerate(items):
            refused = item.problem is not None
            self.session.add(
                CaptionJobItem(
                    job_id=job.id,
                    position=position,
                    filename=item.filename[:255],
                    blob_key=item.blob_key,
                    status=ITEM_FAILED if refused else ITEM_PENDING,
                    result=item.problem,
                    finished_at=now if refused else None,
                )
            )
        self.session.flush()
        self.finish_if_complete(job.id)
        return job

    def get(self, user_id: int, job_id: str) -> CaptionJob | None:
        """The user's job, or None (another user's job does not exist for them)."""
        return self.session.scalar(
            select(CaptionJob).where(CaptionJob.id == job_id, CaptionJob.user_id == user_id)
        )

    def list_jobs(self, user_id: int, *, offset: int, limit: int) -> tuple[list[CaptionJob], int]:
        """The user's jobs, newest first, and how many there are."""
        where = CaptionJob.user_id == user_id
        count = self.session.scalar(select(func.count()).select_from(CaptionJob).where(where))
        rows = self.session.scalars(
            select(CaptionJob)
            .where(where)
            .order_by(CaptionJob.created_at.desc(), CaptionJob.id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), int(count or 0)

    def active_count(self, user_id: int) -> int:
        """The user's jobs that still have photos to caption."""
        count = self.session.scalar(
            select(func.count())
            .select_from(CaptionJob)
            .where(CaptionJob.user_id == user_id, CaptionJob.status == JOB_QUEUED)
        )
        return int(count or 0)

    def progress(self, job_id: str) -> Progress:
        """Counts of the job's photos by state."""
        rows = self.session.execute(
            select(CaptionJobItem.status, func.count())
            .where(CaptionJobItem.job_id == job_id)
            .group_by(CaptionJobItem.status)
        ).all()
        counts = {status: int(n) for status, n in rows}
        return Progress(
            total=sum(counts.values()),
            done=counts.get(ITEM_DONE, 0),
            failed=counts.get(ITEM_FAILED, 0),
            running=counts.get(ITEM_RUNNING, 0),
        )

    def results(self, job_id: str, *, offset: int, limit: int) -> list[CaptionJobItem]:
        """The job's photos in submission order."""
        rows = self.session.scalars(
            select(CaptionJobItem)
            .where(CaptionJobItem.job_id == job_id)
            .order_by(CaptionJobItem.position)
            .offset(offset)
            .limit(limit)
        )
        return list(rows)

    def delete(self, user_id: int, job_id: str) -> list[str] | None:
        """Delete the user's job; the blob keys it referenced, or None when there is no such job.

        A worker holding one of its photos finds its claim gone and records nothing.
        """
        job = self.get(user_id, job_id)
        if job is None:
            return None
        keys = self.session.scalars(
            select(CaptionJobItem.blob_key).where(
                CaptionJobItem.job_id == job_id, CaptionJobItem.blob_key.is_not(None)
            )
        )
        found = {k for k in keys if k is not None}
        self.session.execute(delete(CaptionJobItem).where(CaptionJobItem.job_id == job_id))
        self.session.delete(job)
        self.session.flush()
        return sorted(found)

    def referenced(self, blob_keys: Sequence[str]) -> set[str]:
        """Which of ``blob_keys`` some job photo still references."""
        if not blob_keys:
            return set()
        rows = self.session.scalars(
            select(CaptionJobItem.blob_key).where(CaptionJobItem.blob_key.in_(blob_keys))
        )
        return {k for k in rows if k is not None}

    def is_finished(self, job_id: str) -> bool:
        """Whether the job has a result for every photo, or no longer exists (deleted)."""
        status = self.session.scalar(select(CaptionJob.status).where(CaptionJob.id == job_id))
        return status is None or status == JOB_DONE

    def claim(self, limit: int, lease_s: float, job_id: str | None = None) -> list[Claimed]:
        """Claim up to ``limit`` photos that are pending or whose worker's lease ran out.

        Oldest jobs first, or only photos of ``job_id``. Each claim is a guarded ``UPDATE``: of
        two workers racing for a row only one updates it, so the other simply skips it.
        """
        now = datetime.now(UTC)
        claimable = or_(
            CaptionJobItem.status == ITEM_PENDING,
            (CaptionJobItem.status == ITEM_RUNNING) & (CaptionJobItem.lease_until < now),
        )
        where = [claimable, CaptionJob.status == JOB_QUEUED]
        if job_id is not None:
            where.append(CaptionJobItem.job_id == job_id)
        candidates = self.session.execute(
            select(
                CaptionJobItem.id,
                CaptionJobItem.job_id,
                CaptionJobItem.blob_key,
                CaptionJobItem.filename,
                CaptionJob.user_id,
                CaptionJob.options,
            )
            .join(CaptionJob, CaptionJob.id == CaptionJobItem.job_id)
            .where(*where)
            .order_by(CaptionJob.created_at, CaptionJobItem.position)
            .limit(limit)
        ).all()
        claimed = []
        lease_until = now + timedelta(seconds=lease_s)
        for item_id, item_job, blob_key, filename, user_id, options in candidates:
            token = uuid.uuid4().hex
            taken = cast(
                CursorResult[Any],
                self.session.execute(
                    update(CaptionJobItem)
                    .where(CaptionJobItem.id == item_id, claimable)
                    .values(
                        status=ITEM_RUNNING,
                        claim=token,
                        lease_until=lease_until,
                        attempts=CaptionJobItem.attempts + 1,
                    )
                    .execution_options(synchronize_session=False),
                ),
            )
            if taken.rowcount == 1 and blob_key is not None:
                claimed.append(
                    Claimed(item_id, item_job, user_id, blob_key, filename, options, token)
                )
        return claimed

    def renew(self, claims: Sequence[Claimed], lease_s: float) -> None:
        """Extend the leases of photos still being captioned."""
        until = datetime.now(UTC) + timedelta(seconds=lease_s)
        for c in claims:
            self.session.execute(
                update(CaptionJobItem)
                .where(CaptionJobItem.id == c.item_id, CaptionJobItem.claim == c.claim)
                .values(lease_until=until)
                .execution_options(synchronize_session=False)
            )

    def release(self, claims: Sequence[Claimed]) -> None:
        """Put photos whose captioning was cut short back in line (their tries still count)."""
        for c in claims:
            self.session.execute(
                update(CaptionJobItem)
                .where(
                    CaptionJobItem.id == c.item_id,
                    CaptionJobItem.claim == c.claim,
                    CaptionJobItem.status == ITEM_RUNNING,
                )
                .values(status=ITEM_PENDING, claim=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def record(self, claimed: Claimed, *, ok: bool, result: str) -> bool:
        """Record a photo's caption or problem if the claim still holds; whether it did."""
        recorded = cast(
            CursorResult[Any],
            self.session.execute(
                update(CaptionJobItem)
                .where(
                    CaptionJobItem.id == claimed.item_id,
                    CaptionJobItem.claim == claimed.claim,
                    CaptionJobItem.status == ITEM_RUNNING,
                )
                .values(
                    status=ITEM_DONE if ok else ITEM_FAILED,
                    result=result,
                    lease_until=None,
                    finished_at=utcnow(),
                )
                .execution_options(synchronize_session=False),
            ),
        )
        if recorded.rowcount != 1:
            return False
        self.finish_if_complete(claimed.job_id)
        return True

    def finish_if_complete(self, job_id: str) -> None:
        """Mark the job done once none of its photos is pending or running."""
        left = select(CaptionJobItem.id).where(
            CaptionJobItem.job_id == job_id,
            CaptionJobItem.status.in_((ITEM_PENDING, ITEM_RUNNING)),
        )
        self.session.execute(
            update(CaptionJob)
            .where(CaptionJob.id == job_id, CaptionJob.status == JOB_QUEUED, ~left.exists())
            .values(status=JOB_DONE, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
