"""Kept captions (opt-in), corrections, and teaching retrieval from a correction.

Keeping is off unless the user turns it on (``keep_captions``) or a request asks for it. A kept
caption stores the photo the model saw in the same content-addressed blob store as reference
photos, under the same quotas; the blob sweep counts it as a reference, and deletes kept
captions older than ``REPIC_HISTORY__RETENTION_DAYS``. Teaching goes through the very intake of
`POST /concepts/{id}/images` (normalisation, derivatives, quotas, index update).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.settings import QuotaSettings, UploadSettings
from app.services.capacity import check_quota, storage_problem
from app.services.captioning import CaptionRequest, CaptionResult, _mentioned
from app.services.concepts import ConceptService, StoredImage
from app.services.errors import InvalidInput, not_found
from app.services.inputs import Correction, Taught
from app.services.intake import normalize_uploads
from model.images import NormalizedImage, encode_rgb
from store.blobs import BlobError, BlobStore
from store.captions import CaptionRecord, CaptionRepository, dump_json, load_json
from store.db import transaction
from store.gc import forget_garbage, lock_blobs, record_unreferenced
from store.models import User
from store.repositories import ConceptRepository


@dataclass(frozen=True)
class KeptCaption:
    """A kept caption as plain data (its JSON columns decoded), for the API and the CLI."""

    id: int
    created_at: datetime
    caption: str
    model: str
    options: dict[str, Any]
    concepts_used: list[dict[str, Any]]
    concepts_mentioned: list[dict[str, Any]]
    sha256: str
    width: int
    height: int
    feedback: dict[str, Any] | None
    taught: list[dict[str, Any]]

    @classmethod
    def of(cls, row: CaptionRecord) -> KeptCaption:
        return cls(
            id=row.id,
            created_at=row.created_at,
            caption=row.caption,
            model=row.model,
            options=load_json(row.options),
            concepts_used=load_json(row.concepts_used),
            concepts_mentioned=load_json(row.concepts_mentioned),
            sha256=row.sha256,
            width=row.width,
            height=row.height,
            feedback=load_json(row.feedback),
            taught=load_json(row.taught),
        )


class HistoryService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        concepts: ConceptService,
        *,
        quota: QuotaSettings,
        upload: UploadSettings,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.concepts = concepts
        self.quota = quota
        self.upload = upload

    # -- the per-user setting ----------------------------------------------------------------

    def keeps(self, user_id: int) -> bool:
        """Whether the user opted in to keeping captions."""
        with self.sessions() as session:
            return bool(session.scalar(select(User.keep_captions).where(User.id == user_id)))

    def set_keeps(self, user_id: int, keep: bool) -> bool:
        with transaction(self.sessions) as session:
            session.execute(update(User).where(User.id == user_id).values(keep_captions=keep))
        return keep

    # -- keeping -----------------------------------------------------------------------------

    def check_room(self, user_id: int, photo: NormalizedImage) -> None:
        """409 ``quota-exceeded`` before the model runs when keeping would go over a quota
        (:meth:`keep` checks again in its own transaction)."""
        with self.sessions() as session:
            usage = ConceptRepository(session).usage(user_id)
        check_quota(self.quota, usage, [photo], new_concept=False)

    def keep(
        self, user_id: int, photo: NormalizedImage, req: CaptionRequest, result: CaptionResult
    ) -> int:
        """Store the caption with its photo; 409 ``quota-exceeded`` stores nothing."""
        try:
            key = self.blobs.put(photo.data)
        except BlobError as exc:
            raise storage_problem(exc) from exc
        try:
            with transaction(self.sessions) as session:
                # As for reference photos: under the blob lock, put back bytes a sweep removed
                # since the write and cancel a pending deletion.
                lock_blobs(session, [photo.sha256])
                if not self.blobs.exists(key):
                    self.blobs.put(photo.data)
                forget_garbage(session, [photo.sha256])
                usage = ConceptRepository(session).usage(user_id)
                check_quota(self.quota, usage, [photo], new_concept=False)
                record = CaptionRepository(session).add(
                    CaptionRecord(
                        user_id=user_id,
                        sha256=photo.sha256,
                        blob_key=key,
                        width=photo.width,
                        height=photo.height,
                        size_bytes=len(photo.data),
                        options=dump_json(_options(req)),
                        concepts_used=dump_json(
                            [
                                {
                                    "id": m.concept.id,
                                    "name": m.concept.name,
                                    "score": None if math.isnan(m.score) else m.score,
                                }
                                for m in result.used
                            ]
                        ),
                        concepts_mentioned=dump_json(
                            [{"id": i, "name": n} for i, n in result.mentioned]
                        ),
                        caption=result.caption,
                        model=result.model,
                    )
                )
                return record.id
        except BaseException:
            with transaction(self.sessions) as session:
                record_unreferenced(session, [key])
            raise

    # -- reads and deletes -------------------------------------------------------------------

    def page(self, user_id: int, *, offset: int, limit: int) -> tuple[list[KeptCaption], int]:
        with self.sessions() as session:
            rows, count = CaptionRepository(session).page(user_id, offset=offset, limit=limit)
            return [KeptCaption.of(row) for row in rows], count

    def get(self, user_id: int, record_id: int) -> KeptCaption:
        with self.sessions() as session:
            return KeptCaption.of(self._owned(CaptionRepository(session), user_id, record_id))

    def photo(self, user_id: int, record_id: int) -> StoredImage:
        with self.sessions() as session:
            row = self._owned(CaptionRepository(session), user_id, record_id)
            key, sha = row.blob_key, row.sha256
        try:
            return StoredImage(data=self.blobs.get(key), sha256=sha, mime="image/jpeg")
        except BlobError as exc:
            raise storage_problem(exc) from exc

    def delete(self, user_id: int, record_id: int) -> None:
        with transaction(self.sessions) as session:
            row = self._owned(CaptionRepository(session), user_id, record_id)
            key = row.blob_key
            session.delete(row)
            record_unreferenced(session, [key])

    def delete_all(self, user_id: int) -> int:
        with transaction(self.sessions) as session:
            repo = CaptionRepository(session)
            count = repo.page(user_id, offset=0, limit=1)[1]
            record_unreferenced(session, repo.delete_all(user_id))
            return count

    # -- corrections -------------------------------------------------------------------------

    def feedback(self, user_id: int, record_id: int, body: Correction) -> KeptCaption:
        """Validate and store a correction (it replaces an earlier one)."""
        present, wrong = body.present or [], body.wrong or []
        with transaction(self.sessions) as session:
            row = self._owned(CaptionRepository(session), user_id, record_id)
            names = ConceptRepository(session).names(user_id)
            by_id = {cid: name for cid, name, _ in names}
            unknown = sorted({i for i in [*present, *wrong] if i not in by_id})
            if unknown:
                raise InvalidInput(
                    "unknown-concept",
                    f"You have no concept with id {', '.join(map(str, unknown))}; list yours "
                    "with GET /concepts.",
                )
            both = sorted(set(present) & set(wrong))
            if both:
                raise InvalidInput(
                    "contradictory-feedback",
                    f"Concept {', '.join(map(str, both))} cannot be both present and wrong.",
                )
            if body.caption is not None:
                named = {cid for cid, _ in _mentioned(body.caption, names)}
                missing = [by_id[i] for i in present if i not in named]
                if missing:
                    raise InvalidInput(
                        "caption-misses-concepts",
                        "The corrected caption must name every concept marked present; it does "
                        f"not name {', '.join(f'<{n}>' for n in missing)}.",
                    )
            now = datetime.now(UTC)
            row.feedback = dump_json(
                {
                    "present": [{"id": i, "name": by_id[i]} for i in dict.fromkeys(present)],
                    "wrong": [{"id": i, "name": by_id[i]} for i in dict.fromkeys(wrong)],
                    "caption": body.caption,
                    "rating": body.rating,
                    "created_at": now.isoformat(),
                }
            )
            row.feedback_at = now
            session.flush()
            return KeptCaption.of(row)

    def teach(
        self, user_id: int, record_id: int, concept_id: int, box: Sequence[int] | None
    ) -> Taught:
        """Add the kept photo (or the ``box`` crop of it) to the concept's reference photos."""
        with self.sessions() as session:
            row = self._owned(CaptionRepository(session), user_id, record_id)
            key, width, height = row.blob_key, row.width, row.height
        if box is not None:
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise InvalidInput(
                    "invalid-box",
                    f"The box {list(box)} is not inside the kept photo ({width}x{height}); give "
                    "[x1, y1, x2, y2] with x1 < x2 <= width and y1 < y2 <= height.",
                )
        try:
            data = self.blobs.get(key)
        except BlobError as exc:
            raise storage_problem(exc) from exc
        if box is not None:
            data = _crop(NormalizedImage(data, width, height), box)
        limits = self.upload
        # The very intake of POST /concepts/{id}/images: normalise, then add_images.
        images = normalize_uploads(
            [(f"caption-{record_id}.jpg", data)],
            max_pixels=limits.max_pixels,
            max_side=limits.store_max_side,
        )
        concept = self.concepts.add_images(user_id, concept_id, images)
        image_id = next((i.id for i in concept.images if i.sha256 == images[0].sha256), None)
        taught = Taught(
            concept_id=concept_id, image_id=image_id, box=None if box is None else list(box)
        )
        with transaction(self.sessions) as session:
            kept = CaptionRepository(session).get(user_id, record_id)
            if kept is not None:  # deleted meanwhile: the photo is taught all the same
                kept.taught = dump_json([*load_json(kept.taught), asdict(taught)])
        return taught

    @staticmethod
    def _owned(repo: CaptionRepository, user_id: int, record_id: int) -> CaptionRecord:
        row = repo.get(user_id, record_id)
        if row is None:
            raise not_found(f"Kept caption {record_id}")
        return row


def _options(req: CaptionRequest) -> dict[str, Any]:
    return {
        "top_k": req.top_k,
        "min_score": req.min_score,
        "concept_ids": None if req.concept_ids is None else list(req.concept_ids),
        "instruction": req.instruction,
        "max_tokens": req.max_tokens,
        "prompt_style": str(req.style),
    }


def _crop(photo: NormalizedImage, box: Sequence[int]) -> bytes:
    x1, y1, x2, y2 = box
    return encode_rgb(photo.to_pil().crop((x1, y1, x2, y2))).data
