"""Per-user exact FAISS search over concept image vectors, rebuilt from the database when in doubt.

Each user has an own ``IndexIDMap2(IndexFlatIP(d))``: exact inner product over L2-normalised
vectors (cosine similarity), keyed by image id, with a map from image to concept beside it. One
user's search never touches another user's index object.

Crash consistency. The database is the source of truth: every vector is stored there with the id of
the embedder that produced it, and every change to a user's vectors increments that user's version
in the same transaction. The files under ``index_dir`` are only a start-up cache:

* ``user_<id>.faiss`` holds the serialised index and ``user_<id>.json`` the version, embedder id,
  image->concept map and the sha256 of the ``.faiss`` bytes. Both are written to a temporary file
  and renamed into place, the JSON last; a torn pair fails the hash check.
* A cached index is used only while its version equals the database's. Any other state (no file, a
  torn or foreign file, a crash between a commit and the index update, another process that changed
  the user) rebuilds from the loader, so nothing is lost or kept that the database does not hold.
* :meth:`ConceptIndex.add` and :meth:`ConceptIndex.remove` are called after the commit that set
  ``new_version``; they update in place only when the index is exactly one version behind,
  otherwise they rebuild (which then already contains the change).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

_FORMAT = 1
log = logging.getLogger(__name__)


class IndexEmbedderMismatch(RuntimeError):
    """A user's stored vectors come from another embedder than the one answering queries."""


@dataclass(frozen=True)
class UserVectors:
    """A consistent snapshot of one user's vectors from the database (one transaction).

    ``embedder_id`` is the id all ``vectors`` were computed with; for a user without vectors it may
    be empty. A loader that finds vectors of several embedders must report one that differs from
    the current embedder, so the mismatch surfaces instead of mixing spaces.
    """

    version: int
    embedder_id: str
    image_ids: np.ndarray
    concept_ids: np.ndarray
    vectors: np.ndarray


@dataclass(frozen=True)
class Hit:
    image_id: int
    concept_id: int
    score: float


@dataclass(frozen=True)
class RetrievedConcept:
    """A concept chosen for a caption: its best-matching image, score and query region."""

    concept_id: int
    image_id: int
    score: float
    region_index: int


@dataclass
class _UserIndex:
    version: int
    embedder_id: str
    index: faiss.IndexIDMap2
    concept_of: dict[int, int]


def _unique_ids(image_ids: np.ndarray) -> np.ndarray:
    ids = np.ascontiguousarray(image_ids, dtype=np.int64).reshape(-1)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("image ids must be unique")
    return ids


def _rows(
    dim: int, image_ids: np.ndarray, concept_ids: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ids, concept ids and vectors in FAISS's dtypes, checked to describe the same rows."""
    ids = _unique_ids(image_ids)
    concepts = np.asarray(concept_ids, dtype=np.int64).reshape(-1)
    if len(concepts) != len(ids):
        raise ValueError(f"{len(ids)} image ids but {len(concepts)} concept ids")
    if len(ids) == 0:  # an empty column from the database may come without its width
        return ids, concepts, np.zeros((0, dim), dtype=np.float32)
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    if vecs.shape != (len(ids), dim):
        raise ValueError(f"vectors must have shape ({len(ids)}, {dim}), got {vecs.shape}")
    return ids, concepts, vecs


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ConceptIndex:
    """Per-user FAISS indexes kept in memory and on disk, always matching the database version.

    ``loader(user_id)`` returns the user's :class:`UserVectors`; ``db_version(user_id)`` returns
    the user's current version cheaply (0 for a user without vectors). Calls for one user are
    serialised by a lock of that user; different users never wait on each other.
    """

    def __init__(
        self,
        index_dir: Path,
        loader: Callable[[int], UserVectors],
        db_version: Callable[[int], int],
        *,
        embedder_id: str,
        dim: int,
        search_threads: int = 1,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.index_dir = index_dir
        self.embedder_id = embedder_id
        self.dim = dim
        self.search_threads = search_threads
        self._loader = loader
        self._db_version = db_version
        self._users: dict[int, _UserIndex] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        index_dir.mkdir(parents=True, exist_ok=True)

    def _lock(self, user_id: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(user_id, threading.Lock())

    def _paths(self, user_id: int) -> tuple[Path, Path]:
        stem = self.index_dir / f"user_{int(user_id)}"
        return stem.with_suffix(".faiss"), stem.with_suffix(".json")

    def search(self, user_id: int, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-``k`` hits of ``user_id``'s images for each query row, best first.

        Raises :class:`IndexEmbedderMismatch` when the user's vectors come from another embedder.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (m, {self.dim}), got {q.shape}")
        version = self._db_version(user_id)
        # OpenMP's thread count belongs to the calling thread: requests arrive on worker
        # threads, where a process-wide call made at start-up does not apply.
        faiss.omp_set_num_threads(self.search_threads)
        with self._lock(user_id):
            entry = self._synced(user_id, version)
            if entry.embedder_id != self.embedder_id:
                raise IndexEmbedderMismatch(
                    f"user {user_id}'s vectors were computed by {entry.embedder_id}, but the "
                    f"service embeds with {self.embedder_id}; run `repic reindex`."
                )
            n = entry.index.ntotal
            if n == 0:
                return [[] for _ in range(len(q))]
            scores, ids = entry.index.search(q, min(k, n))
            concept_of = entry.concept_of
        return [
            [Hit(int(i), concept_of[int(i)], float(s)) for s, i in zip(row_s, row_i, strict=True)]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def add(
        self,
        user_id: int,
        image_ids: np.ndarray,
        concept_ids: np.ndarray,
        vectors: np.ndarray,
        new_version: int,
    ) -> None:
        """Add (or replace) images after the database commit that set ``new_version``."""
        ids, concepts, vecs = _rows(self.dim, image_ids, concept_ids, vectors)
        with self._lock(user_id):
            entry = self._in_place_target(user_id, new_version)
            if entry is None:
                self._rebuild(user_id)
                return
            entry.index.remove_ids(faiss.IDSelectorBatch(ids))
            entry.index.add_with_ids(vecs, ids)
            entry.concept_of.update(zip(ids.tolist(), concepts.tolist(), strict=True))
            entry.version = new_version
            self._save(user_id, entry)

    def remove(self, user_id: int, image_ids: np.ndarray, new_version: int) -> None:
        """Remove images after the database commit that set ``new_version``."""
        ids = _unique_ids(image_ids)
        with self._lock(user_id):
            entry = self._in_place_target(user_id, new_version)
            if entry is None:
                self._rebuild(user_id)
                return
            entry.index.remove_ids(faiss.IDSelectorBatch(ids))
            for image_id in ids.tolist():
                entry.concept_of.pop(image_id, None)
            entry.version = new_version
            self._save(user_id, entry)

    def forget(self, user_id: int) -> None:
        """Drop a user's index from memory and disk (after the user is deleted)."""
        with self._lock(user_id):
            self._users.pop(user_id, None)
            for path in self._paths(user_id):
                path.unlink(missing_ok=True)

    def size(self, user_id: int) -> int:
        """Number of vectors in the user's index, synced to the database version first."""
        version = self._db_version(user_id)
        with self._lock(user_id):
            return int(self._synced(user_id, version).index.ntotal)

    def _in_place_target(self, user_id: int, new_version: int) -> _UserIndex | None:
        """The cached index if it is exactly the state the committed change was applied to."""
        entry = self._cached(user_id)
        if (
            entry is None
            or entry.version != new_version - 1
            or entry.embedder_id != self.embedder_id
        ):
            return None
        return entry

    def _cached(self, user_id: int) -> _UserIndex | None:
        entry = self._users.get(user_id)
        if entry is None:
            entry = self._read(user_id)
            if entry is not None:
                self._users[user_id] = entry
        return entry

    def _synced(self, user_id: int, version: int) -> _UserIndex:
        entry = self._users.get(user_id)
        if entry is not None and entry.version == version:
            return entry
        entry = self._read(user_id)
        if entry is not None and entry.version == version:
            self._users[user_id] = entry
            return entry
        return self._rebuild(user_id)

    def _rebuild(self, user_id: int) -> _UserIndex:
        snapshot = self._loader(user_id)
        ids, concepts, vecs = _rows(
            self.dim, snapshot.image_ids, snapshot.concept_ids, snapshot.vectors
        )
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        index.add_with_ids(vecs, ids)
        # An empty user can take vectors from whichever embedder is current.
        embedder_id = snapshot.embedder_id if len(ids) else self.embedder_id
        entry = _UserIndex(
            snapshot.version,
            embedder_id,
            index,
            dict(zip(ids.tolist(), concepts.tolist(), strict=True)),
        )
        log.info(
            "rebuilt index of user %s: %d vectors, version %d", user_id, len(ids), entry.version
        )
        self._users[user_id] = entry
        self._save(user_id, entry)
        return entry

    def _save(self, user_id: int, entry: _UserIndex) -> None:
        faiss_path, meta_path = self._paths(user_id)
        data = faiss.serialize_index(entry.index).tobytes()
        ids = list(entry.concept_of)
        meta = {
            "format": _FORMAT,
            "version": entry.version,
            "embedder_id": entry.embedder_id,
            "dim": self.dim,
            "faiss_sha256": hashlib.sha256(data).hexdigest(),
            "image_ids": ids,
            "concept_ids": [entry.concept_of[i] for i in ids],
        }
        _write_atomically(faiss_path, data)
        _write_atomically(meta_path, json.dumps(meta, separators=(",", ":")).encode())

    def _read(self, user_id: int) -> _UserIndex | None:
        faiss_path, meta_path = self._paths(user_id)
        try:
            meta = json.loads(meta_path.read_bytes())
            data = faiss_path.read_bytes()
        except (OSError, ValueError):
            return None
        if (
            meta.get("format") != _FORMAT
            or meta.get("dim") != self.dim
            or meta.get("faiss_sha256") != hashlib.sha256(data).hexdigest()
        ):
            log.warning("ignoring stale or torn index files of user %s", user_id)
            return None
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        concept_of = dict(zip(meta["image_ids"], meta["concept_ids"], strict=True))
        if not isinstance(index, faiss.IndexIDMap2) or index.ntotal != len(concept_of):
            return None
        embedder_id = str(meta["embedder_id"]) if concept_of else self.embedder_id
        return _UserIndex(int(meta["version"]), embedder_id, index, concept_of)


def configure_faiss(*, dim: int, threads: int = 1) -> None:
    """Process-wide FAISS settings for per-user flat search; call once at start-up.

    ``threads``: one query is bound by memory bandwidth and gains little from more threads,
    while concurrent requests on the app's thread pool, each starting a team of OpenMP threads,
    oversubscribe the cores. One thread per search is right for a server.

    BLAS from three queries on: below its threshold FAISS streams all vectors once *per query*,
    so the usual six query crops read a user's index six times. Its BLAS path reads it once, at
    about three single scans' cost for one to six queries (``bench/retrieval.py``), so it is
    used from three queries up and a single query keeps the one-scan path.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = 3 * dim  # compared with n_queries * dim


def merge_region_hits(
    per_region_hits: Sequence[Sequence[Hit]], *, top_k: int, min_score: float
) -> list[RetrievedConcept]:
    """Merge the hits of all query regions into at most ``top_k`` distinct concepts.

    All hits are ranked by score (ties keep region order, then rank within the region), each
    concept keeps its best hit, hits below ``min_score`` are dropped, and the first ``top_k``
    concepts remain. Region 0 is the whole image, so it wins ties against crops.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    ranked = sorted(
        ((hit, region) for region, hits in enumerate(per_region_hits) for hit in hits),
        key=lambda pair: -pair[0].score,
    )
    chosen: dict[int, RetrievedConcept] = {}
    for hit, region in ranked:
        if hit.score < min_score or len(chosen) == top_k:
            break
        if hit.concept_id not in chosen:
            chosen[hit.concept_id] = RetrievedConcept(
                hit.concept_id, hit.image_id, hit.score, region
            )
    return list(chosen.values())
