"""Concept use cases: create, read, update, delete, and their reference images.

Order of a write, so a crash at any point loses nothing and leaks nothing: decode and embed
(nothing stored yet) -> write blobs (content-addressed, harmless if orphaned) -> one database
transaction (blob locks, rows, vectors, the user's index version) -> update the FAISS index. The
index is a cache of the database: a crash before the last step leaves an index whose saved version
is behind the database's, and it is rebuilt on next use. Blobs are never deleted here: dropped
rows record their blobs for the grace-period sweep (``store.gc``), which also removes orphans.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.names import InvalidName, name_key, normalize_name
from app.problems import ProblemError, not_found
from app.runtime import Runtime
from app.schemas import ConceptUpdate
from model.images import NormalizedImage
from store.blobs import BlobError
from store.db import transaction
from store.gc import forget_garbage, lock_blobs, record_unreferenced
from store.models import Concept
from store.repositories import ConceptRepository, NewImage, UserRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    sha256: str
    mime: str


class ConceptService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # -- reads ------------------------------------------------------------------------------

    def get(self, user_id: int, concept_id: int) -> Concept:
        with self.rt.sessions() as session:
            return self._owned(ConceptRepository(session), user_id, concept_id)

    def page(
        self, user_id: int, *, offset: int, limit: int, name: str | None
    ) -> tuple[Sequence[Concept], int]:
        key = None if name is None else name_key(_valid_name(name))
        with self.rt.sessions() as session:
            return ConceptRepository(session).page(
                user_id, offset=offset, limit=limit, name_key=key
            )

    def image(self, user_id: int, concept_id: int, image_id: int) -> StoredImage:
        with self.rt.sessions() as session:
            row = ConceptRepository(session).image(user_id, concept_id, image_id)
            if row is None:
                raise not_found(f"Image {image_id} of concept {concept_id}")
            blob_key, sha, mime = row.blob_key, row.sha256, row.mime
        try:
            data = self.rt.blobs.get(blob_key)
        except BlobError as exc:
            raise _storage_problem(exc) from exc
        return StoredImage(data=data, sha256=sha, mime=mime)

    # -- writes -----------------------------------------------------------------------------

    def create(
        self,
        user_id: int,
        *,
        name: str,
        info: str,
        category: str | None,
        images: Sequence[NormalizedImage],
    ) -> Concept:
        clean = _valid_name(name)
        unique = _unique(images)
        vectors, embedder_id = self._embed(unique)
        written = self._write_blobs(unique)
        try:
            with transaction(self.rt.sessions) as session:
                self._claim_blobs(session, unique)
                repo = ConceptRepository(session)
                if repo.by_name_key(user_id, name_key(clean)) is not None:
                    raise _name_taken(clean)
                concept = repo.create(
                    user_id,
                    name=clean,
                    name_key=name_key(clean),
                    info=info,
                    category=category or None,
                )
                rows = [
                    repo.add_image(concept, _new_image(img, key, vec, embedder_id))
                    for img, key, vec in zip(unique, written, vectors, strict=True)
                ]
                version = UserRepository(session).bump_index_version(user_id)
        except IntegrityError as exc:
            self._abandon(written)
            raise _name_taken(clean) from exc
        except BaseException:
            self._abandon(written)
            raise
        self.rt.vectors.added(
            user_id, [r.id for r in rows], [concept.id] * len(rows), vectors, version
        )
        return concept

    def update(self, user_id: int, concept_id: int, patch: ConceptUpdate) -> Concept:
        try:
            with transaction(self.rt.sessions) as session:
                repo = ConceptRepository(session)
                concept = self._owned(repo, user_id, concept_id)
                if patch.name is not None:
                    clean = _valid_name(patch.name)
                    other = repo.by_name_key(user_id, name_key(clean))
                    if other is not None and other.id != concept.id:
                        raise _name_taken(clean)
                    concept.name, concept.name_key = clean, name_key(clean)
                if patch.info is not None:
                    concept.info = patch.info
                if "category" in patch.model_fields_set:
                    concept.category = patch.category or None
                session.flush()
                return concept
        except IntegrityError as exc:
            raise _name_taken(patch.name or "") from exc

    def delete(self, user_id: int, concept_id: int) -> None:
        with transaction(self.rt.sessions) as session:
            repo = ConceptRepository(session)
            concept = self._owned(repo, user_id, concept_id)
            keys = [img.blob_key for img in concept.images]
            image_ids = [img.id for img in concept.images]
            session.delete(concept)
            record_unreferenced(session, keys)
            version = UserRepository(session).bump_index_version(user_id)
        self.rt.vectors.removed(user_id, image_ids, version)

    def add_images(
        self, user_id: int, concept_id: int, images: Sequence[NormalizedImage]
    ) -> Concept:
        limit = self.rt.settings.upload.max_images_per_concept
        with self.rt.sessions() as session:
            current = self._owned(ConceptRepository(session), user_id, concept_id)
            known = {img.sha256 for img in current.images}
        fresh = [img for img in _unique(images) if img.sha256 not in known]
        if len(known) + len(fresh) > limit:
            raise ProblemError(
                409,
                "too-many-images",
                f"A concept keeps at most {limit} images; it has {len(known)}. Delete some first.",
            )
        if not fresh:
            return self.get(user_id, concept_id)
        vectors, embedder_id = self._embed(fresh)
        written = self._write_blobs(fresh)
        try:
            with transaction(self.rt.sessions) as session:
                self._claim_blobs(session, fresh)
                repo = ConceptRepository(session)
                concept = self._owned(repo, user_id, concept_id)
                rows = [
                    repo.add_image(concept, _new_image(img, key, vec, embedder_id))
                    for img, key, vec in zip(fresh, written, vectors, strict=True)
                ]
                version = UserRepository(session).bump_index_version(user_id)
        except BaseException:
            self._abandon(written)
            raise
        self.rt.vectors.added(
            user_id, [r.id for r in rows], [concept.id] * len(rows), vectors, version
        )
        return concept

    def delete_image(self, user_id: int, concept_id: int, image_id: int) -> None:
        with transaction(self.rt.sessions) as session:
            repo = ConceptRepository(session)
            concept = self._owned(repo, user_id, concept_id)
            row = repo.image(user_id, concept_id, image_id)
            if row is None:
                raise not_found(f"Image {image_id} of concept {concept_id}")
            if len(concept.images) <= 1:
                raise ProblemError(
                    409,
                    "last-image",
                    "A concept keeps at least one image; add another first or delete the concept.",
                )
            key = row.blob_key
            concept.images.remove(row)
            record_unreferenced(session, [key])
            version = UserRepository(session).bump_index_version(user_id)
        self.rt.vectors.removed(user_id, [image_id], version)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _owned(repo: ConceptRepository, user_id: int, concept_id: int) -> Concept:
        concept = repo.get(user_id, concept_id)
        if concept is None:
            raise not_found(f"Concept {concept_id}")
        return concept

    def _embed(self, images: Sequence[NormalizedImage]) -> tuple[np.ndarray, str]:
        """Vectors first: if the embedder fails, nothing has been stored yet."""
        embedder_id = self.rt.vectors.embedder_id
        return self.rt.vectors.embed([img.to_pil() for img in images]), embedder_id

    def _write_blobs(self, images: Sequence[NormalizedImage]) -> list[str]:
        try:
            return [self.rt.blobs.put(img.data) for img in images]
        except BlobError as exc:
            raise _storage_problem(exc) from exc

    def _claim_blobs(self, session: Session, images: Sequence[NormalizedImage]) -> None:
        """First step of a transaction that adds image rows: under the blob locks, put back any
        blob a sweep removed since ``_write_blobs`` and cancel pending deletions."""
        lock_blobs(session, [img.sha256 for img in images])
        try:
            for img in images:
                if not self.rt.blobs.exists(self.rt.blobs.key_for(img.sha256)):
                    self.rt.blobs.put(img.data)
        except BlobError as exc:
            raise _storage_problem(exc) from exc
        forget_garbage(session, [img.sha256 for img in images])

    def _abandon(self, blob_keys: Sequence[str]) -> None:
        """A write failed after its blobs were stored: hand them to the sweep, which deletes
        them after the grace period unless another row references them by then."""
        try:
            with transaction(self.rt.sessions) as session:
                record_unreferenced(session, blob_keys)
        except Exception:
            # The database is what failed; the sweep finds these blobs as orphans instead.
            log.warning("could not record %d unreferenced blob(s)", len(blob_keys), exc_info=True)


def _valid_name(raw: str) -> str:
    try:
        return normalize_name(raw)
    except InvalidName as exc:
        raise ProblemError(422, "invalid-name", str(exc)) from exc


def _unique(images: Sequence[NormalizedImage]) -> list[NormalizedImage]:
    seen: dict[str, NormalizedImage] = {}
    for img in images:
        seen.setdefault(img.sha256, img)
    return list(seen.values())


def _new_image(
    img: NormalizedImage, blob_key: str, vector: np.ndarray, embedder_id: str
) -> NewImage:
    return NewImage(
        sha256=img.sha256,
        width=img.width,
        height=img.height,
        mime=img.mime,
        blob_key=blob_key,
        embedding=vector,
        embedder_id=embedder_id,
    )


def _name_taken(name: str) -> ProblemError:
    return ProblemError(
        409, "concept-exists", f"You already have a concept named <{name}>; pick another name."
    )


def _storage_problem(exc: BlobError) -> ProblemError:
    log.error("image storage failed: %s", exc)
    return ProblemError(
        503,
        "storage-unavailable",
        "The image store cannot be written or read; nothing was changed. Retry later; "
        "operators: check the blob store (free disk space and permissions of REPIC_DATA_DIR, "
        "or the reachability and credentials of the REPIC_STORAGE__S3_* bucket).",
        headers={"Retry-After": "30"},
    )
