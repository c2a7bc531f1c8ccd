"""A user's whole data: deleted with everything it owns, or exported as one zip file."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.services.errors import Unavailable, not_found
from app.services.vectors import VectorStore
from store.blobs import BlobError, BlobStore
from store.captions import CaptionRepository
from store.db import transaction
from store.gc import record_unreferenced
from store.repositories import ConceptRepository, UserRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletedUser:
    name: str
    concepts: int
    photos: int


class UserDataService:
    def __init__(
        self, sessions: sessionmaker[Session], blobs: BlobStore, vectors: VectorStore
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.vectors = vectors

    def delete(self, user_name: str) -> DeletedUser:
        """Delete the user, its keys, concepts, photos, vectors and index files.

        One transaction: once it commits, nothing can reach the data any more. The photos and
        their derivatives go to the grace-period sweep like any other unreferenced blob (another
        user may hold the same bytes; the sweep checks under the blob lock).
        """
        with transaction(self.sessions) as session:
            users = UserRepository(session)
            user = users.by_name(user_name)
            if user is None:
                raise not_found(f"User {user_name!r}")
            concepts = ConceptRepository(session)
            usage = concepts.usage(user.id)
            keys = concepts.blob_keys_of_user(user.id)
            keys += CaptionRepository(session).blob_keys_of_user(user.id)
            user_id, name = user.id, user.name
            users.delete(user)
            record_unreferenced(session, keys)
        self.vectors.forget(user_id)
        return DeletedUser(name=name, concepts=usage.concepts, photos=usage.photos)

    def export(self, user_name: str) -> bytes:
        """A zip: ``concepts.json`` (names, info, categories, photo list) and ``photos/``."""
        with self.sessions() as session:
            user = UserRepository(session).by_name(user_name)
            if user is None:
                raise not_found(f"User {user_name!r}")
            concepts = ConceptRepository(session).all_for_user(user.id)
            buffer = io.BytesIO()
            manifest = []
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
                for concept in concepts:
                    photos = []
                    for img in concept.images:
                        path = f"photos/{concept.id}/{img.id}.jpg"
                        archive.writestr(path, self._blob(img.blob_key))
                        photos.append(
                            {
                                "path": path,
                                "sha256": img.sha256,
                                "width": img.width,
                                "height": img.height,
                            }
                        )
                    manifest.append(
                        {
                            "id": concept.id,
                            "name": concept.name,
                            "info": concept.info,
                            "category": concept.category,
                            "created_at": concept.created_at.isoformat(),
                            "photos": photos,
                        }
                    )
                archive.writestr(
                    "concepts.json",
                    json.dumps(
                        {
                            "user": user.name,
                            "exported_at": datetime.now(UTC).isoformat(),
                            "concepts": manifest,
                        },
                        ensure_ascii=False,
                        indent=2,
                    ),
                )
        return buffer.getvalue()

    def _blob(self, key: str) -> bytes:
        try:
            return self.blobs.get(key)
        except BlobError as exc:
            log.error("export failed: %s", exc)
            raise Unavailable(
                "storage-unavailable",
                "A photo cannot be read, so no partial export is given. Retry later; operators: "
                "check REPIC_DATA_DIR.",
                retry_after_s=30,
            ) from exc
