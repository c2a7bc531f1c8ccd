"""Kept captions (opt-in history) and the corrections users make to them.

A kept caption holds the query photo as the VLM saw it (a content-addressed blob of the same
store as reference photos, so the blob sweep counts it as a reference), the request's options,
the concepts used and mentioned, the caption, the model and the time. Corrections live on the
row: the latest feedback as JSON, and every photo (or crop) taught to a concept from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.models import _NEVER_REUSE_IDS, Base, BigId, UTCDateTime, utcnow


class CaptionRecord(Base):
    __tablename__ = "caption_records"
    # SQLite would reuse a deleted row's id: a stale id would then name a newer caption.
    __table_args__ = _NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_key: Mapped[str] = mapped_column(String(80))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    #: JSON: the request's options (top_k, min_score, concept_ids, instruction, ...).
    options: Mapped[str] = mapped_column(Text)
    #: JSON lists: ``[{"id", "name", "score"}]`` and ``[{"id", "name"}]``.
    concepts_used: Mapped[str] = mapped_column(Text)
    concepts_mentioned: Mapped[str] = mapped_column(Text)
    caption: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    #: JSON of the latest correction (see ``app.api.schemas.FeedbackCreate``), or NULL.
    feedback: Mapped[str | None] = mapped_column(Text, default=None)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: JSON list of ``{"concept_id", "box"}``: photos taught to concepts from this caption.
    taught: Mapped[str] = mapped_column(Text, default="[]")


class CaptionRepository:
    """Kept captions, always scoped by owner."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: CaptionRecord) -> CaptionRecord:
        """Insert a kept caption (the caller holds the blob lock of its photo)."""
        self.session.add(record)
        self.session.flush()
        return record

    def get(self, user_id: int, record_id: int) -> CaptionRecord | None:
        """The user's kept caption ``record_id``, or None (also for another user's)."""
        return self.session.scalar(
            select(CaptionRecord).where(
                CaptionRecord.id == record_id, CaptionRecord.user_id == user_id
            )
        )

    def page(self, user_id: int, *, offset: int, limit: int) -> tuple[Sequence[CaptionRecord], int]:
        """One page of the user's kept captions, newest first, and their total count."""
        rows = self.session.scalars(
            select(CaptionRecord)
            .where(CaptionRecord.user_id == user_id)
            .order_by(CaptionRecord.created_at.desc(), CaptionRecord.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
        count = self.session.scalar(
            select(func.count()).select_from(CaptionRecord).where(CaptionRecord.user_id == user_id)
        )
        return rows, int(count or 0)

    def with_feedback(self, user_ids: Sequence[int] | None) -> Sequence[CaptionRecord]:
        """Kept captions that carry a correction or a taught photo (``None``: every user's)."""
        stmt = select(CaptionRecord).where(
            (CaptionRecord.feedback.is_not(None)) | (CaptionRecord.taught != "[]")
        )
        if user_ids is not None:
            stmt = stmt.where(CaptionRecord.user_id.in_(user_ids))
        return self.session.scalars(stmt.order_by(CaptionRecord.id)).all()

    def delete_all(self, user_id: int) -> list[str]:
        """Delete every kept caption of the user; the blob keys their rows referenced."""
        keys = self.blob_keys_of_user(user_id)
        self.session.execute(delete(CaptionRecord).where(CaptionRecord.user_id == user_id))
        return keys

    def blob_keys_of_user(self, user_id: int) -> list[str]:
        """The photo keys of the user's kept captions."""
        rows = self.session.scalars(
            select(CaptionRecord.blob_key).where(CaptionRecord.user_id == user_id)
        )
        return sorted(set(rows))

    def expire(self, before: datetime) -> list[str]:
        """Delete kept captions older than ``before``; the blob key of each deleted row."""
        keys = list(
            self.session.scalars(
                select(CaptionRecord.blob_key).where(CaptionRecord.created_at < before)
            )
        )
        self.session.execute(delete(CaptionRecord).where(CaptionRecord.created_at < before))
        return keys

    def usage(self, user_id: int) -> tuple[int, int]:
        """Count and stored bytes of the user's kept caption photos."""
        count, stored = self.session.execute(
            select(func.count(), func.coalesce(func.sum(CaptionRecord.size_bytes), 0)).where(
                CaptionRecord.user_id == user_id
            )
        ).one()
        return int(count), int(stored or 0)


def dump_json(value: Any) -> str:
    """Compact JSON for the text columns of this table."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load_json(text: str | None) -> Any:
    """The value of a JSON text column (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)
