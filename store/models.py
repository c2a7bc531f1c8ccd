"""SQLAlchemy 2.0 typed tables. Alembic (``migrations/``) is the only way they are created."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every dialect (SQLite stores naive values and drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


#: SQLite reuses the largest deleted rowid unless the table says AUTOINCREMENT: a stale id would
#: then name someone else's new object. PostgreSQL identities never go back.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class User(Base):
    __tablename__ = "users"
    __table_args__ = _NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Bumped in the same transaction as every change to the user's vectors; the FAISS index
    #: files record the version they were written at, so a stale file is detected and rebuilt.
    index_version: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Keep every caption (photo, options, result) for corrections; off unless the user opts in.
    keep_captions: Mapped[bool] = mapped_column(Boolean, default=False)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = _NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    #: sha256 of the whole key; keys carry 256 random bits, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    user: Mapped[User] = relationship(back_populates="keys")


class Concept(Base):
    __tablename__ = "concepts"
    __table_args__ = (
        UniqueConstraint("user_id", "name_key", name="uq_concepts_user_name"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    #: Case-folded name: `<Bo>` and `bo` are one concept, as the caption matcher sees them.
    name_key: Mapped[str] = mapped_column(String(64))
    #: What a prompt shows as ``<display_name>`` (RAP/RePIC ``database.json`` ``name`` field,
    #: e.g. ``Iron Man`` for the key ``ironman``); ``None`` shows ``name``. Never an identity.
    display_name: Mapped[str | None] = mapped_column(String(64), default=None)
    info: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    images: Mapped[list[ConceptImage]] = relationship(
        back_populates="concept",
        cascade="all, delete-orphan",
        order_by="ConceptImage.id",
        lazy="selectin",
    )


class ConceptImage(Base):
    __tablename__ = "concept_images"
    __table_args__ = (
        UniqueConstraint("concept_id", "sha256", name="uq_concept_images_concept_sha"),
        Index("ix_concept_images_sha256", "sha256"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    concept_id: Mapped[int] = mapped_column(
        ForeignKey("concepts.id", ondelete="CASCADE"), index=True
    )
    #: Denormalised owner, so vector loads per user need no join.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(32))
    blob_key: Mapped[str] = mapped_column(String(80))
    #: float32 little-endian L2-normalised embedding, with its dimension and embedder id.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    embedding_dim: Mapped[int | None] = mapped_column(Integer, default=None)
    embedder_id: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Size of the stored file, for the per-user storage quota (NULL for photos stored before
    #: the quota existed; they count as 0).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Derivatives made at upload (content-addressed blobs like the photo itself): the
    #: demonstration image within ``prompt_max_pixels`` (the photo's own key when it fits) and
    #: the thumbnail. NULL for rows stored before they existed, until `repic derivatives`.
    prompt_blob_key: Mapped[str | None] = mapped_column(String(80), default=None)
    prompt_width: Mapped[int | None] = mapped_column(Integer, default=None)
    prompt_height: Mapped[int | None] = mapped_column(Integer, default=None)
    prompt_max_pixels: Mapped[int | None] = mapped_column(Integer, default=None)
    thumb_blob_key: Mapped[str | None] = mapped_column(String(80), default=None)

    concept: Mapped[Concept] = relationship(back_populates="images")


class BlobGarbage(Base):
    """A blob that lost a reference: the garbage sweep deletes it once it has had no reference
    for the grace period. Uploads of the same bytes remove the record in their own commit."""

    __tablename__ = "blob_garbage"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(80))
    unreferenced_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# The job tables live in their own module; importing it here puts them on ``Base.metadata``
# wherever the models are loaded (Alembic's comparison included).
from store import captions as _captions  # noqa: E402, F401
from store import jobs as _jobs  # noqa: E402, F401
