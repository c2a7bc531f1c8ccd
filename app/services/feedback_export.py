"""Corrections read back from the database as training cases (`repic train export-feedback`).

One user's corrections, or, for an administrator's ``--all``, every user's: a case only ever
holds concepts of the kept caption's own user.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.blobs import BlobError, BlobStore
from store.captions import CaptionRecord, CaptionRepository, load_json
from store.models import Concept
from store.repositories import ConceptRepository
from training.feedback import FeedbackCase, FeedbackConcept


def feedback_cases(
    sessions: sessionmaker[Session], blobs: BlobStore, user_ids: Sequence[int] | None
) -> tuple[list[FeedbackCase], Counter[str]]:
    """The corrected kept captions of ``user_ids`` (``None``: all users) as training cases,
    and what was skipped (by reason)."""
    skipped: Counter[str] = Counter()
    cases = []
    with sessions() as session:
        records = CaptionRepository(session).with_feedback(user_ids)
        concepts = ConceptRepository(session)
        for record in records:
            case = _case(blobs, concepts, record, skipped)
            if case is not None:
                cases.append(case)
    return cases, skipped


def _case(
    blobs: BlobStore, concepts: ConceptRepository, record: CaptionRecord, skipped: Counter[str]
) -> FeedbackCase | None:
    try:
        photo = blobs.get(record.blob_key)
    except BlobError:
        skipped["photo unreadable"] += 1
        return None
    feedback: dict[str, Any] = load_json(record.feedback) or {}
    taught = load_json(record.taught)
    # The photos taught from this caption show the query itself: never its demonstration.
    own_images = {t["image_id"] for t in taught}

    def concept(concept_id: int) -> FeedbackConcept | None:
        found = concepts.get(record.user_id, concept_id)
        if found is None:
            skipped["concept deleted"] += 1
            return None
        return FeedbackConcept(found.name, found.info, _demo(blobs, found, own_images, record))

    def resolved(refs: list[dict[str, Any]]) -> list[FeedbackConcept]:
        return [c for c in (concept(int(r["id"])) for r in refs) if c is not None]

    present = resolved(feedback.get("present", []))
    if len(present) < len(feedback.get("present", [])):
        present = []  # an ICT answer missing a confirmed concept would teach the wrong thing
    boxes = []
    for item in taught:
        if item.get("box") is None:
            continue
        target = concept(int(item["concept_id"]))
        if target is not None:
            boxes.append((target, list(item["box"])))
    return FeedbackCase(
        case_id=str(record.id),
        photo=photo,
        present=present,
        wrong=resolved(feedback.get("wrong", [])),
        boxes=boxes,
    )


def _demo(
    blobs: BlobStore, concept: Concept, own_images: set[int], record: CaptionRecord
) -> bytes | None:
    for image in concept.images:
        if image.id in own_images or image.sha256 == record.sha256:
            continue
        try:
            return blobs.get(image.prompt_blob_key or image.blob_key)
        except BlobError:
            continue
    return None
