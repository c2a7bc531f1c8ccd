"""Concept use cases: create, read, update, delete, and their reference images.

Order of a write, so a crash at any point loses nothing and leaks nothing: decode, make the
derivatives (the demonstration image within the VLM budget and the thumbnail) and embed the
demonstration image (nothing stored yet) -> write blobs: each photo with its derivatives
(content-addressed, harmless if orphaned) -> one database
transaction (blob locks, rows, vectors, the user's index version) -> update the FAISS index. The
index is a cache of the database: a crash before the last step leaves an index whose saved version
is behind the database's, and it is rebuilt on next use. Blobs are never deleted here: dropped
rows record their blobs (photo and derivatives) for the grace-period sweep (``store.gc``), which
also removes orphans.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.core.names import InvalidName, name_key, normalize_name
from app.core.settings import QuotaSettings, UploadSettings
from app.services.capacity import DiskReserve, check_quota, storage_problem
from app.services.embeddings import Embeddings
from app.services.errors import Conflict, InvalidInput, not_found
from app.services.inputs import ConceptPatch
from app.services.vectors import VectorStore
from model.images import NormalizedImage
from model.photos import make_derivatives
from store.blobs import BlobError, BlobStore, sha_of
from store.db import transaction
from store.gc import forget_garbage, lock_blobs, record_unreferenced
from store.models import Concept, ConceptImage
from store.repositories import ConceptRepository, NewImage, StoredDerivatives, UserRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    sha256: str
    mime: str


class ConceptService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        embeddings: Embeddings,
        vectors: VectorStore,
        *,
        upload: UploadSettings,
        quota: QuotaSettings,
        demo_max_pixels: int,
        disk: DiskReserve,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.embeddings = embeddings
        self.vectors = vectors
        self.upload = upload
        self.quota = quota
        self.demo_max_pixels = demo_max_pixels
        self.disk = disk

    # -- reads ------------------------------------------------------------------------------

    def get(self, user_id: int, concept_id: int) -> Concept:
        with self.sessions() as session:
            return self._owned(ConceptRepository(session), user_id, concept_id)

    def page(
        self, user_id: int, *, offset: int, limit: int, name: str | None
    ) -> tuple[Sequence[Concept], int]:
        key = None if name is None else name_key(_valid_name(name))
        with self.sessions() as session:
            return ConceptRepository(session).page(
                user_id, offset=offset, limit=limit, name_key=key
            )

    def image(self, user_id: int, concept_id: int, image_id: int) -> StoredImage:
        with self.sessions() as session:
            row = ConceptRepository(session).image(user_id, concept_id, image_id)
            if row is None:
                raise not_found(f"Image {image_id} of concept {concept_id}")
            blob_key, sha, mime = row.blob_key, row.sha256, row.mime
        try:
            data = self.blobs.get(blob_key)
        except BlobError as exc:
            raise storage_problem(exc) from exc
        return StoredImage(data=data, sha256=sha, mime=mime)

    def thumbnail(self, user_id: int, concept_id: int, image_id: int) -> StoredImage:
        """The thumbnail made at upload (made now, not stored, for rows from before that)."""
        with self.sessions() as session:
            row = ConceptRepository(session).image(user_id, concept_id, image_id)
            if row is None:
                raise not_found(f"Image {image_id} of concept {concept_id}")
            blob_key, thumb_key = row.blob_key, row.thumb_blob_key
            size = (row.width, row.height)
        try:
            if thumb_key is not None:
                data = self.blobs.get(thumb_key)
            else:
                log.warning("image %s has no stored thumbnail; run `repic derivatives`", image_id)
                data = self._derive(NormalizedImage(self.blobs.get(blob_key), *size))[1]
        except BlobError as exc:
            raise storage_problem(exc) from exc
        thumb = NormalizedImage(data, 0, 0)
        return StoredImage(data=data, sha256=thumb.sha256, mime=thumb.mime)

    # -- writes -----------------------------------------------------------------------------

    def create(
        self,
        user_id: int,
        *,
        name: str,
        info: str,
        category: str | None,
        images: Sequence[NormalizedImage],
        display_name: str | None = None,
    ) -> Concept:
        clean = _valid_name(name)
        shown = _valid_display_name(display_name, clean)

        def new_concept(repo: ConceptRepository) -> Concept:
            if repo.by_name_key(user_id, name_key(clean)) is not None:
                raise _name_taken(clean)
            return repo.create(
                user_id,
                name=clean,
                name_key=name_key(clean),
                info=info,
                category=category or None,
                display_name=shown,
            )

        try:
            return self._store_images(user_id, _unique(images), new_concept, new_concept=True)
        except IntegrityError as exc:
            raise _name_taken(clean) from exc

    def update(self, user_id: int, concept_id: int, patch: ConceptPatch) -> Concept:
        try:
            with transaction(self.sessions) as session:
                repo = ConceptRepository(session)
                concept = self._owned(repo, user_id, concept_id)
                changes = patch.changes
                new_name = changes.get("name")
                if new_name is not None:
                    clean = _valid_name(new_name)
                    other = repo.by_name_key(user_id, name_key(clean))
                    if other is not None and other.id != concept.id:
                        raise _name_taken(clean)
                    concept.name, concept.name_key = clean, name_key(clean)
                if "display_name" in changes:
                    concept.display_name = _valid_display_name(
                        changes["display_name"], concept.name
                    )
                if "info" in changes:
                    concept.info = changes["info"] or ""
                if "category" in changes:
                    concept.category = changes["category"] or None
                session.flush()
                return concept
        except IntegrityError as exc:
            raise _name_taken(patch.changes.get("name") or "") from exc

    def delete(self, user_id: int, concept_id: int) -> None:
        with transaction(self.sessions) as session:
            repo = ConceptRepository(session)
            concept = self._owned(repo, user_id, concept_id)
            keys = [key for img in concept.images for key in _row_keys(img)]
            image_ids = [img.id for img in concept.images]
            session.delete(concept)
            record_unreferenced(session, keys)
            version = UserRepository(session).bump_index_version(user_id)
        self.vectors.removed(user_id, image_ids, version)

    def add_images(
        self, user_id: int, concept_id: int, images: Sequence[NormalizedImage]
    ) -> Concept:
        limit = self.upload.max_images_per_concept
        with self.sessions() as session:
            current = self._owned(ConceptRepository(session), user_id, concept_id)
            known = {img.sha256 for img in current.images}
        fresh = [img for img in _unique(images) if img.sha256 not in known]
        if len(known) + len(fresh) > limit:
            raise Conflict(
                "too-many-images",
                f"A concept keeps at most {limit} images; it has {len(known)}. Delete some first.",
            )
        if not fresh:
            return self.get(user_id, concept_id)
        return self._store_images(
            user_id, fresh, lambda repo: self._owned(repo, user_id, concept_id), new_concept=False
        )

    def _store_images(
        self,
        user_id: int,
        images: Sequence[NormalizedImage],
        concept_of: Callable[[ConceptRepository], Concept],
        *,
        new_concept: bool,
    ) -> Concept:
        """The write of new photos (see the module's docstring), for a new concept or an
        existing one: ``concept_of`` gives the concept inside the transaction."""
        derived = [self._derive(img) for img in images]
        vectors, embedder_id = self._embed([prompt for prompt, _ in derived])
        written = self._write_blobs(images, derived)
        try:
            with transaction(self.sessions) as session:
                self._claim_blobs(session, images, written)
                repo = ConceptRepository(session)
                usage = repo.usage(user_id)  # before a new concept's row exists
                concept = concept_of(repo)
                check_quota(self.quota, usage, images, new_concept=new_concept)
                rows = [
                    repo.add_image(concept, _new_image(img, stored, vec, embedder_id))
                    for img, stored, vec in zip(images, written, vectors, strict=True)
                ]
                version = UserRepository(session).bump_index_version(user_id)
        except BaseException:
            self._abandon(_keys(written))
            raise
        self.vectors.added(
            user_id, [r.id for r in rows], [concept.id] * len(rows), vectors, version
        )
        return concept

    def delete_image(self, user_id: int, concept_id: int, image_id: int) -> None:
        with transaction(self.sessions) as session:
            repo = ConceptRepository(session)
            concept = self._owned(repo, user_id, concept_id)
            row = repo.image(user_id, concept_id, image_id)
            if row is None:
                raise not_found(f"Image {image_id} of concept {concept_id}")
            if len(concept.images) <= 1:
                raise Conflict(
                    "last-image",
                    "A concept keeps at least one image; add another first or delete the concept.",
                )
            keys = _row_keys(row)
            concept.images.remove(row)
            record_unreferenced(session, keys)
            version = UserRepository(session).bump_index_version(user_id)
        self.vectors.removed(user_id, [image_id], version)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _owned(repo: ConceptRepository, user_id: int, concept_id: int) -> Concept:
        concept = repo.get(user_id, concept_id)
        if concept is None:
            raise not_found(f"Concept {concept_id}")
        return concept

    def _embed(self, prompts: Sequence[NormalizedImage]) -> tuple[np.ndarray, str]:
        """Vectors first: if the embedder fails, nothing has been stored yet.

        A reference photo is embedded from its demonstration image (within the VLM budget, far
        above CLIP's input size), which the upload makes anyway, reduced to the input size by the
        service's resize rather than the slower one in CLIP's preprocessing. The vector is the
        stored copy's up to resampling (cosine above 0.999, same ranking: tests/test_photos.py).
        """
        embedder_id = self.embeddings.embedder_id
        return self.embeddings.embed_photos([img.to_pil() for img in prompts]), embedder_id

    def _derive(self, img: NormalizedImage) -> tuple[NormalizedImage, bytes]:
        """The demonstration image and the thumbnail bytes of a stored photo."""
        made = make_derivatives(
            img,
            prompt_max_pixels=self.demo_max_pixels,
            thumbnail_side=self.upload.thumbnail_side,
        )
        return made.prompt, made.thumbnail.data

    def store_photo(
        self, img: NormalizedImage, derived: tuple[NormalizedImage, bytes] | None = None
    ) -> tuple[str, StoredDerivatives]:
        """Write a photo and its derivatives (content-addressed); returns their blob keys."""
        key = self.blobs.put(img.data)
        return key, self.store_derivatives(img, key, derived)

    def store_derivatives(
        self, img: NormalizedImage, key: str, derived: tuple[NormalizedImage, bytes] | None = None
    ) -> StoredDerivatives:
        """Write the derivatives of the photo stored under ``key`` (made now unless given)."""
        prompt, thumb = derived if derived is not None else self._derive(img)
        prompt_key = key if prompt is img else self.blobs.put(prompt.data)
        return StoredDerivatives(
            prompt_blob_key=prompt_key,
            prompt_width=prompt.width,
            prompt_height=prompt.height,
            prompt_max_pixels=self.demo_max_pixels,
            thumb_blob_key=self.blobs.put(thumb),
        )

    def _write_blobs(
        self,
        images: Sequence[NormalizedImage],
        derived: Sequence[tuple[NormalizedImage, bytes]],
    ) -> list[tuple[str, StoredDerivatives]]:
        written: list[tuple[str, StoredDerivatives]] = []
        self.disk.check(sum(len(img.data) for img in images))
        try:
            for img, made in zip(images, derived, strict=True):
                written.append(self.store_photo(img, made))
        except BlobError as exc:
            self._abandon(_keys(written))
            raise storage_problem(exc) from exc
        return written

    def _claim_blobs(
        self,
        session: Session,
        images: Sequence[NormalizedImage],
        written: Sequence[tuple[str, StoredDerivatives]],
    ) -> None:
        """First step of a transaction that adds image rows: under the blob locks of the photos
        and their derivatives, put back any blob a sweep removed since ``_write_blobs`` and
        cancel pending deletions."""
        keys = _keys(written)
        shas = [sha_of(k) for k in keys]
        lock_blobs(session, shas)
        try:
            for img, (key, stored) in zip(images, written, strict=True):
                if self.blobs.exists(key) and all(
                    self.blobs.exists(k) for k in (stored.prompt_blob_key, stored.thumb_blob_key)
                ):
                    continue
                self.store_photo(img)
        except BlobError as exc:
            raise storage_problem(exc) from exc
        forget_garbage(session, shas)

    def _abandon(self, blob_keys: Sequence[str]) -> None:
        """A write failed after its blobs were stored: hand them to the sweep, which deletes
        them after the grace period unless another row references them by then."""
        try:
            with transaction(self.sessions) as session:
                record_unreferenced(session, blob_keys)
        except Exception:
            # The database is what failed; the sweep finds these blobs as orphans instead.
            log.warning("could not record %d unreferenced blob(s)", len(blob_keys), exc_info=True)


def _valid_name(raw: str) -> str:
    try:
        return normalize_name(raw)
    except InvalidName as exc:
        raise InvalidInput("invalid-name", str(exc)) from exc


def _unique(images: Sequence[NormalizedImage]) -> list[NormalizedImage]:
    seen: dict[str, NormalizedImage] = {}
    for img in images:
        seen.setdefault(img.sha256, img)
    return list(seen.values())


def _new_image(
    img: NormalizedImage,
    stored: tuple[str, StoredDerivatives],
    vector: np.ndarray,
    embedder_id: str,
) -> NewImage:
    return NewImage(
        sha256=img.sha256,
        width=img.width,
        height=img.height,
        mime=img.mime,
        blob_key=stored[0],
        embedding=vector,
        embedder_id=embedder_id,
        derivatives=stored[1],
        size_bytes=len(img.data),
    )


def _valid_display_name(raw: str | None, name: str) -> str | None:
    """A display name follows the rules of a name; empty or equal to ``name`` means none."""
    if raw is None or not raw.strip():
        return None
    shown = _valid_name(raw)
    return None if shown == name else shown


def _keys(written: Sequence[tuple[str, StoredDerivatives]]) -> list[str]:
    return [key for main, d in written for key in (main, d.prompt_blob_key, d.thumb_blob_key)]


def _row_keys(row: ConceptImage) -> list[str]:
    return [k for k in (row.blob_key, row.prompt_blob_key, row.thumb_blob_key) if k is not None]


def _name_taken(name: str) -> Conflict:
    return Conflict(
        "concept-exists", f"You already have a concept named <{name}>; pick another name."
    )
