"""The per-user FAISS index, glued to the database that owns the vectors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.core.metrics import Metrics
from app.core.settings import IndexSettings
from app.services.embeddings import Embeddings
from app.services.errors import DomainError, Unavailable
from app.services.timings import Timings
from store.index import ConceptIndex, Hit, IndexEmbedderMismatch, UserVectors
from store.repositories import ConceptRepository, UserRepository, decode_embedding
from store.vector_table import configure_faiss

log = logging.getLogger(__name__)


class VectorStore:
    """The per-user FAISS indexes, kept in step with the database; their failures become
    domain errors. ``embeddings`` only names the vectors (model id and width)."""

    def __init__(
        self,
        embeddings: Embeddings,
        index_dir: Path,
        sessions: sessionmaker[Session],
        metrics: Metrics,
        index_settings: IndexSettings | None = None,
    ) -> None:
        self._embeddings = embeddings
        self._index_dir = index_dir
        self._index_settings = index_settings or IndexSettings()
        self._sessions = sessions
        self._metrics = metrics
        self._index: ConceptIndex | None = None
        self._lock = threading.Lock()

    # -- index ------------------------------------------------------------------------------

    def index(self) -> ConceptIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    model_id, dim = self._embeddings.embedder_id, self._embeddings.dim
                    configure_faiss(dim=dim)
                    self._index = ConceptIndex(
                        self._index_dir,
                        self._load_user_vectors,
                        self._user_version,
                        embedder_id=model_id,
                        dim=dim,
                        cache_max_bytes=self._index_settings.cache_max_bytes,
                        compressed_min_vectors=self._index_settings.compressed_min_vectors,
                    )
        return self._index

    def search(
        self,
        user_id: int,
        queries: np.ndarray,
        k: int,
        timings: Timings | None = None,
        *,
        version: int | None = None,
    ) -> list[list[Hit]]:
        """Per-query top-``k`` hits among the user's own images.

        ``version``: the user's index version, when the caller has just read it in its session.
        """
        try:
            with (timings or Timings(self._metrics)).stage("search"):
                return self.index().search(user_id, queries, k, version=version)
        except IndexEmbedderMismatch as exc:
            raise Unavailable(
                "reindex-required",
                f"{exc} Until then retrieval is unavailable; captions with concept_ids work.",
                retry_after_s=300,
            ) from exc
        finally:
            self.publish_index_stats()

    def publish_index_stats(self) -> None:
        """Copy the index cache's size into the metrics (after every index operation)."""
        if self._index is None:
            return
        stats = self._index.stats()
        self._metrics.observe_index(
            vectors=stats.vectors,
            loaded_users=stats.loaded_users,
            bytes_held=stats.bytes_held,
            evictions=stats.evictions,
        )

    def added(
        self,
        user_id: int,
        image_ids: Sequence[int],
        concept_ids: Sequence[int],
        vectors: np.ndarray,
        version: int,
    ) -> None:
        """Mirror a committed insert into the index; on failure the next search rebuilds it."""
        try:
            self.index().add(
                user_id,
                np.asarray(image_ids, dtype=np.int64),
                np.asarray(concept_ids, dtype=np.int64),
                vectors,
                version,
            )
        except (OSError, RuntimeError, DomainError) as exc:
            log.warning("index update for user %s deferred to a rebuild: %s", user_id, exc)
        self.publish_index_stats()

    def removed(self, user_id: int, image_ids: Sequence[int], version: int) -> None:
        """Mirror a committed delete into the index; on failure the next search rebuilds it."""
        try:
            self.index().remove(user_id, np.asarray(image_ids, dtype=np.int64), version)
        except (OSError, RuntimeError, DomainError) as exc:
            log.warning("index update for user %s deferred to a rebuild: %s", user_id, exc)
        self.publish_index_stats()

    def forget(self, user_id: int) -> None:
        """Drop a deleted user's index from memory and disk; failures are logged, not raised."""
        try:
            self.index().forget(user_id)
        except (OSError, RuntimeError, DomainError) as exc:
            log.warning("index files of deleted user %s left behind: %s", user_id, exc)

    def _user_version(self, user_id: int) -> int:
        with self._sessions() as session:
            return UserRepository(session).index_version(user_id)

    def _load_user_vectors(self, user_id: int) -> UserVectors:
        # The version is read before the rows: rows newer than the version only cause one more
        # rebuild later, never a stale index labelled as current.
        with self._sessions() as session:
            version = UserRepository(session).index_version(user_id)
            rows = ConceptRepository(session).vectors_of_user(user_id)
            image_ids, concept_ids, vectors = [], [], []
            embedder_id = self._embeddings.embedder_id
            stale = 0
            for row in rows:
                vec = decode_embedding(row)
                if vec is None or row.embedder_id != embedder_id:
                    stale += 1
                    continue
                image_ids.append(row.id)
                concept_ids.append(row.concept_id)
                vectors.append(vec)
        if stale:
            raise IndexEmbedderMismatch(
                f"{stale} of user {user_id}'s images were embedded by another model than "
                f"{embedder_id}; run `repic reindex`."
            )
        dim = self._embeddings.dim
        return UserVectors(
            version=version,
            embedder_id=embedder_id,
            image_ids=np.asarray(image_ids, dtype=np.int64),
            concept_ids=np.asarray(concept_ids, dtype=np.int64),
            vectors=np.asarray(vectors, dtype=np.float32).reshape(len(vectors), dim),
        )
