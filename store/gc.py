"""Grace-period garbage collection of blobs, safe across processes and replicas.

Nothing deletes a blob inline. The protocol, per sha256:

* a transaction that drops image rows records their blobs in ``blob_garbage`` (time stamped);
* a transaction that adds image rows first takes the blob lock of their digests
  (:func:`lock_blobs`), re-uploads any blob that has vanished meanwhile, and removes their
  garbage records;
* the sweep, per recorded digest older than the grace period, takes the same lock, checks that
  the record is still there and no row references the digest, deletes the blob, then the record.

Both sides hold the lock across check and act, so either the sweep deletes before the upload's
commit (and the upload, seeing the blob gone under the lock, writes it again) or after it (and
sees the new reference). The lock is a PostgreSQL transaction-level advisory lock; on SQLite the
first statement is a write, which takes the database's single write lock. The grace period keeps
blobs around for requests that read a row just before its deletion and fetch the bytes after.
Orphans (blobs written by a request that died before its commit) are found by listing the store:
any blob with no reference, older than the grace period, is recorded and swept the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from store.blobs import BlobError, BlobStore, sha_of
from store.captions import CaptionRecord, CaptionRepository
from store.db import transaction
from store.models import BlobGarbage, ConceptImage

log = logging.getLogger(__name__)

_CHUNK = 500


@dataclass
class SweepReport:
    """What one sweep did."""

    deleted: int = 0
    still_referenced: int = 0
    orphans_found: int = 0
    temporaries_removed: int = 0
    failed: int = 0
    captions_expired: int = 0


def lock_blobs(session: Session, shas: Iterable[str]) -> None:
    """Take the per-digest blob locks until the session's transaction ends (sorted: no
    deadlock between two writers of overlapping sets)."""
    ordered = sorted(set(shas))
    if not ordered:
        return
    if session.get_bind().dialect.name == "postgresql":
        for sha in ordered:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(sha)})
    else:
        # A write statement takes SQLite's one write lock for the rest of the transaction.
        session.execute(
            update(BlobGarbage)
            .where(BlobGarbage.sha256.in_(ordered))
            .values(sha256=BlobGarbage.sha256)
        )


def forget_garbage(session: Session, shas: Iterable[str]) -> None:
    """The digests are referenced again: drop their garbage records (call under the lock)."""
    ordered = sorted(set(shas))
    if ordered:
        session.execute(delete(BlobGarbage).where(BlobGarbage.sha256.in_(ordered)))


def record_unreferenced(
    session: Session, blob_keys: Iterable[str], when: datetime | None = None
) -> None:
    """Record blobs whose rows this transaction drops; the sweep decides later, under the lock,
    whether anything still references them. A newer record restarts the grace period."""
    stamp = when or datetime.now(UTC)
    rows = [{"sha256": sha_of(k), "blob_key": k, "unreferenced_since": stamp} for k in blob_keys]
    if not rows:
        return
    unique = list({r["sha256"]: r for r in rows}.values())
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(BlobGarbage).values(unique)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[BlobGarbage.sha256],
            set_={"unreferenced_since": stmt.excluded.unreferenced_since},
        )
    )


def _lock_id(sha: str) -> int:
    """A signed 64-bit advisory lock key from the digest (collisions only serialise more)."""
    value = int(sha[:16], 16)
    return value - (1 << 64) if value >= (1 << 63) else value


def sweep(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    grace: timedelta,
    *,
    orphans: bool = True,
    caption_retention: timedelta | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SweepReport:
    """Delete blobs unreferenced for longer than ``grace``; with ``orphans``, first list the
    store for unreferenced blobs and stale temporaries older than ``grace``. With
    ``caption_retention``, kept captions older than that are deleted first and their photos
    enter the grace period like any other unreferenced blob."""
    report = SweepReport()
    cutoff = now() - grace
    if caption_retention is not None:
        with transaction(sessions) as session:
            keys = CaptionRepository(session).expire(now() - caption_retention)
            record_unreferenced(session, keys)
            report.captions_expired = len(keys)
    if orphans:
        report.temporaries_removed = blobs.remove_stale_temporaries(cutoff)
        report.orphans_found = _record_orphans(sessions, blobs, cutoff)
    with sessions() as session:
        due = list(
            session.scalars(
                select(BlobGarbage.sha256).where(BlobGarbage.unreferenced_since < cutoff)
            )
        )
    for sha in due:
        try:
            outcome = _sweep_one(sessions, blobs, sha, cutoff)
        except BlobError as exc:
            log.warning("blob sweep could not delete %s: %s", sha, exc)
            report.failed += 1
            continue
        if outcome == "deleted":
            report.deleted += 1
        elif outcome == "referenced":
            report.still_referenced += 1
    return report


def _sweep_one(
    sessions: sessionmaker[Session], blobs: BlobStore, sha: str, cutoff: datetime
) -> str:
    with transaction(sessions) as session:
        lock_blobs(session, [sha])
        record = session.get(BlobGarbage, sha, populate_existing=True)
        if record is None or record.unreferenced_since >= cutoff:
            return "skipped"
        refs = session.scalar(
            select(func.count())
            .select_from(ConceptImage)
            .where(_references(ConceptImage.sha256 == sha, [record.blob_key]))
        ) or session.scalar(
            select(func.count()).select_from(CaptionRecord).where(CaptionRecord.sha256 == sha)
        )
        if not refs:
            # Deleted while the lock is held, so no upload of these bytes commits in between.
            blobs.delete(record.blob_key)
        session.delete(record)
        return "referenced" if refs else "deleted"


def _record_orphans(sessions: sessionmaker[Session], blobs: BlobStore, cutoff: datetime) -> int:
    old = {info.key: info.modified_at for info in blobs.list_blobs() if info.modified_at < cutoff}
    found = 0
    keys = sorted(old)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        with transaction(sessions) as session:
            known = _referenced_or_recorded(session, chunk)
            orphans = [k for k in chunk if sha_of(k) not in known]
            for key in orphans:
                # Stamped with the blob's own age: it has been unreferenced at least that long.
                record_unreferenced(session, [key], when=old[key])
            found += len(orphans)
    return found


def _references(photo: ColumnElement[bool], keys: Sequence[str]) -> ColumnElement[bool]:
    """Rows that use one of ``keys`` as photo, demonstration image or thumbnail."""
    return or_(
        photo,
        ConceptImage.blob_key.in_(keys),
        ConceptImage.prompt_blob_key.in_(keys),
        ConceptImage.thumb_blob_key.in_(keys),
    )


def _referenced_or_recorded(session: Session, keys: Sequence[str]) -> set[str]:
    """The digests among ``keys`` that a row uses (in any role) or the sweep already knows."""
    shas = [sha_of(k) for k in keys]
    rows = session.execute(
        select(
            ConceptImage.blob_key, ConceptImage.prompt_blob_key, ConceptImage.thumb_blob_key
        ).where(_references(ConceptImage.sha256.in_(shas), keys))
    ).all()
    wanted = set(keys)
    referenced = {sha_of(k) for row in rows for k in row if k is not None and k in wanted}
    kept = session.scalars(select(CaptionRecord.sha256).where(CaptionRecord.sha256.in_(shas)))
    referenced |= set(kept)
    recorded = session.scalars(select(BlobGarbage.sha256).where(BlobGarbage.sha256.in_(shas)))
    return referenced | set(recorded)
