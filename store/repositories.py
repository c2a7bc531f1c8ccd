"""Queries, each scoped by owner: nothing here returns another user's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, defer, joinedload, raiseload

from store.captions import CaptionRecord, CaptionRepository
from store.models import ApiKey, Concept, ConceptImage, User

if TYPE_CHECKING:  # numpy loads where vectors are decoded, not for account commands
    import numpy as np


@dataclass(frozen=True)
class NewImage:
    """A normalised image about to be attached to a concept."""

    sha256: str
    width: int
    height: int
    mime: str
    blob_key: str
    embedding: np.ndarray | None = None
    embedder_id: str | None = None
    derivatives: StoredDerivatives | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class StoredDerivatives:
    """Blob keys of a photo's demonstration image (with its size and budget) and thumbnail."""

    prompt_blob_key: str
    prompt_width: int
    prompt_height: int
    prompt_max_pixels: int
    thumb_blob_key: str

    def apply(self, row: ConceptImage) -> None:
        """Write these keys onto an image row."""
        row.prompt_blob_key = self.prompt_blob_key
        row.prompt_width = self.prompt_width
        row.prompt_height = self.prompt_height
        row.prompt_max_pixels = self.prompt_max_pixels
        row.thumb_blob_key = self.thumb_blob_key


@dataclass(frozen=True)
class Usage:
    """What one user stores, for the per-user quotas."""

    concepts: int
    photos: int
    stored_bytes: int


class UserRepository:
    """Users and their API keys."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> User | None:
        """The user called ``name``, in any letter case (user names are case-insensitive)."""
        return self.session.scalar(select(User).where(func.lower(User.name) == name.lower()))

    def create(self, name: str) -> User:
        """Insert a user (the caller commits)."""
        user = User(name=name)
        self.session.add(user)
        self.session.flush()
        return user

    def list(self) -> Sequence[User]:
        """All users by id."""
        return self.session.scalars(select(User).order_by(User.id)).all()

    def add_key(self, user: User, prefix: str, key_hash: str) -> ApiKey:
        """Attach a new key hash to ``user``."""
        key = ApiKey(user_id=user.id, prefix=prefix, key_hash=key_hash)
        self.session.add(key)
        self.session.flush()
        return key

    def active_key(self, prefix: str) -> ApiKey | None:
        """The unrevoked key with this prefix, with its user loaded."""
        return self.session.scalar(
            select(ApiKey)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            .options(joinedload(ApiKey.user))  # one query per authenticated request
        )

    def key_by_prefix(self, prefix: str) -> ApiKey | None:
        """A key by prefix, revoked or not."""
        return self.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))

    def revoke(self, key: ApiKey) -> None:
        """Mark a key revoked; it stops working at once."""
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)

    def active_key_count(self, user: User) -> int:
        """How many unrevoked keys ``user`` has."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            )
            or 0
        )

    def delete(self, user: User) -> None:
        """Delete ``user`` with keys, concepts, images, vectors and kept captions (the caller
        commits)."""
        self.session.execute(delete(CaptionRecord).where(CaptionRecord.user_id == user.id))
        self.session.execute(delete(ConceptImage).where(ConceptImage.user_id == user.id))
        self.session.execute(delete(Concept).where(Concept.user_id == user.id))
        self.session.execute(delete(ApiKey).where(ApiKey.user_id == user.id))
        self.session.delete(user)
        self.session.flush()

    def keys_of(self, user: User) -> Sequence[ApiKey]:
        """All keys of a user, newest last."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id)
        ).all()

    def bump_index_version(self, user_id: int) -> int:
        """Increment the user's vector version in this transaction and return the new value."""
        self.session.execute(
            update(User).where(User.id == user_id).values(index_version=User.index_version + 1)
        )
        version = self.session.scalar(select(User.index_version).where(User.id == user_id))
        if version is None:
            raise LookupError(f"user {user_id} does not exist")
        return version

    def index_version(self, user_id: int) -> int:
        """The user's current vector version."""
        return self.session.scalar(select(User.index_version).where(User.id == user_id)) or 0


class ConceptRepository:
    """Concepts and their images, always filtered by ``user_id``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int, concept_id: int) -> Concept | None:
        """The user's concept with this id, or ``None`` (also for another user's concept)."""
        return self.session.scalar(
            select(Concept).where(Concept.id == concept_id, Concept.user_id == user_id)
        )

    def get_many(
        self, user_id: int, concept_ids: Sequence[int], *, with_images: bool = True
    ) -> list[Concept]:
        """The user's concepts among ``concept_ids``, in the order asked; others left out.

        ``with_images=False`` skips loading the image rows (and their vectors).
        """
        query = select(Concept).where(Concept.user_id == user_id, Concept.id.in_(concept_ids))
        if not with_images:
            query = query.options(raiseload(Concept.images))
        rows = self.session.scalars(query).all()
        by_id = {c.id: c for c in rows}
        return [by_id[i] for i in concept_ids if i in by_id]

    def by_name_key(self, user_id: int, name_key: str) -> Concept | None:
        """The user's concept whose case-folded name is ``name_key``."""
        return self.session.scalar(
            select(Concept).where(Concept.user_id == user_id, Concept.name_key == name_key)
        )

    def page(
        self, user_id: int, *, offset: int, limit: int, name_key: str | None = None
    ) -> tuple[Sequence[Concept], int]:
        """One page of the user's concepts (by id) and the total count under the filter."""
        where = [Concept.user_id == user_id]
        if name_key is not None:
            where.append(Concept.name_key == name_key)
        total = self.session.scalar(select(func.count()).select_from(Concept).where(*where)) or 0
        rows = self.session.scalars(
            select(Concept).where(*where).order_by(Concept.id).offset(offset).limit(limit)
        ).all()
        return rows, total

    def all_for_user(self, user_id: int) -> Sequence[Concept]:
        """Every concept of the user (for region detection queries and the grounding matcher)."""
        return self.session.scalars(
            select(Concept).where(Concept.user_id == user_id).order_by(Concept.id)
        ).all()

    def categories(self, user_id: int) -> list[str]:
        """Each concept's category (its name when it has none), for detector text queries."""
        rows = self.session.execute(
            select(Concept.category, Concept.name)
            .where(Concept.user_id == user_id)
            .order_by(Concept.id)
        ).all()
        return [str(r[0] or r[1]) for r in rows]

    def names(self, user_id: int) -> list[tuple[int, str, str | None]]:
        """(id, name, display name) of every concept of the user, without images or vectors."""
        rows = self.session.execute(
            select(Concept.id, Concept.name, Concept.display_name)
            .where(Concept.user_id == user_id)
            .order_by(Concept.id)
        ).all()
        return [(int(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    def create(
        self,
        user_id: int,
        *,
        name: str,
        name_key: str,
        info: str,
        category: str | None,
        display_name: str | None = None,
    ) -> Concept:
        """Insert a concept without images (the caller adds them and commits)."""
        concept = Concept(
            user_id=user_id,
            name=name,
            name_key=name_key,
            info=info,
            category=category,
            display_name=display_name,
        )
        self.session.add(concept)
        self.session.flush()
        return concept

    def add_image(self, concept: Concept, image: NewImage) -> ConceptImage:
        """Attach an image row (with its embedding, when given) to ``concept``."""
        vec = image.embedding
        row = ConceptImage(
            concept_id=concept.id,
            user_id=concept.user_id,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            mime=image.mime,
            blob_key=image.blob_key,
            embedding=None if vec is None else vec.astype("<f4").tobytes(),
            embedding_dim=None if vec is None else int(vec.shape[-1]),
            embedder_id=image.embedder_id,
            size_bytes=image.size_bytes,
        )
        if image.derivatives is not None:
            image.derivatives.apply(row)
        concept.images.append(row)
        self.session.flush()
        return row

    def image(self, user_id: int, concept_id: int, image_id: int) -> ConceptImage | None:
        """One image of one of the user's concepts."""
        return self.session.scalar(
            select(ConceptImage).where(
                ConceptImage.id == image_id,
                ConceptImage.concept_id == concept_id,
                ConceptImage.user_id == user_id,
            )
        )

    def images_by_ids(self, user_id: int, image_ids: Sequence[int]) -> dict[int, ConceptImage]:
        """The user's images among ``image_ids``, keyed by id (their vectors are not loaded)."""
        rows = self.session.scalars(
            select(ConceptImage)
            .where(ConceptImage.user_id == user_id, ConceptImage.id.in_(image_ids))
            .options(defer(ConceptImage.embedding))
        ).all()
        return {r.id: r for r in rows}

    def usage(self, user_id: int) -> Usage:
        """The user's concept count, photo count and stored photo bytes (reference photos and
        kept caption photos)."""
        concepts = self.session.scalar(
            select(func.count()).select_from(Concept).where(Concept.user_id == user_id)
        )
        photos, stored = self.session.execute(
            select(func.count(), func.coalesce(func.sum(ConceptImage.size_bytes), 0)).where(
                ConceptImage.user_id == user_id
            )
        ).one()
        # Kept caption photos share the photo and byte quotas with reference photos.
        kept, kept_bytes = CaptionRepository(self.session).usage(user_id)
        return Usage(
            concepts=concepts or 0,
            photos=int(photos) + kept,
            stored_bytes=int(stored or 0) + kept_bytes,
        )

    def blob_keys_of_user(self, user_id: int) -> list[str]:
        """The blob keys of every image of the user: photos, demonstration images, thumbnails."""
        rows = self.session.execute(
            select(
                ConceptImage.blob_key, ConceptImage.prompt_blob_key, ConceptImage.thumb_blob_key
            ).where(ConceptImage.user_id == user_id)
        ).all()
        return sorted({key for row in rows for key in row if key is not None})

    def images_needing_derivatives(
        self, prompt_max_pixels: int, *, after_id: int, limit: int
    ) -> Sequence[ConceptImage]:
        """Rows without derivatives, or with a demo image made for another budget."""
        return self.session.scalars(
            select(ConceptImage)
            .where(
                ConceptImage.id > after_id,
                (ConceptImage.thumb_blob_key.is_(None))
                | (ConceptImage.prompt_blob_key.is_(None))
                | (ConceptImage.prompt_max_pixels.is_(None))
                | (ConceptImage.prompt_max_pixels != prompt_max_pixels),
            )
            .options(defer(ConceptImage.embedding))
            .order_by(ConceptImage.id)
            .limit(limit)
        ).all()

    def vectors_of_user(self, user_id: int) -> Sequence[ConceptImage]:
        """Every image row of the user, in id order (the index is rebuilt from these)."""
        return self.session.scalars(
            select(ConceptImage).where(ConceptImage.user_id == user_id).order_by(ConceptImage.id)
        ).all()

    def images_needing_embedding(self, embedder_id: str, *, limit: int) -> Sequence[ConceptImage]:
        """Rows whose vector is missing or from another embedder (for ``repic reindex``)."""
        return self.session.scalars(
            select(ConceptImage)
            .where((ConceptImage.embedder_id.is_(None)) | (ConceptImage.embedder_id != embedder_id))
            .order_by(ConceptImage.id)
            .limit(limit)
        ).all()


def decode_embedding(row: ConceptImage) -> np.ndarray | None:
    """The stored float32 vector of an image row, or ``None`` when it has none."""
    if row.embedding is None or row.embedding_dim is None:
        return None
    import numpy as np

    return np.frombuffer(row.embedding, dtype="<f4").reshape(row.embedding_dim)
