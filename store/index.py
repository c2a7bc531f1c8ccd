"""Per-user exact search over concept image vectors, rebuilt from the database when in doubt.

Each user has an own :class:`~store.vector_table.VectorTable` (fp32 rows keyed by image id, with
an int8 first pass from a size threshold on, always returning the exact top-k). One user's search
never touches another user's rows.

Crash consistency. The database is the source of truth: every vector is stored there with the id of
the embedder that produced it, and every change to a user's vectors increments that user's version
in the same transaction. The files under ``index_dir`` (:mod:`store.index_files`: a checksummed
base plus an append-only log) are only a cache:

* A cached index is used only while its version equals the database's. Any other state (no file, a
  torn or foreign file, a crash between a commit and the index update, another process that changed
  the user) rebuilds from the loader, so nothing is lost or kept that the database does not hold.
* :meth:`ConceptIndex.add` and :meth:`ConceptIndex.remove` are called after the commit that set
  ``new_version``; they update in place only when the index is exactly one version behind,
  otherwise they rebuild (which then already contains the change). An in-place change appends one
  log record (O(changed rows)); the base is rewritten only when the log outgrows it.
* Files that cannot be written (read-only or full disk) are logged and the index is served from
  memory; the next change tries again with a full base.

Memory. Loaded indexes sit in an LRU cache capped in bytes; the least recently used users are
dropped first (their files stay, and a later request reloads them). Per-user calls are serialised
by one of a fixed set of striped locks, so the lock table does not grow with the user count.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from store.index_files import IndexFiles, LogRecord, StoredIndex
from store.vector_table import VectorTable

log = logging.getLogger(__name__)
_LOCK_STRIPES = 64
#: The log is folded into a new base once it is larger than the base and this floor.
_COMPACT_MIN_BYTES = 1 << 20


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
class IndexStats:
    """What the cache holds now, and how many users it has dropped since start."""

    loaded_users: int
    vectors: int
    bytes_held: int
    evictions: int


@dataclass
class _UserIndex:
    version: int
    embedder_id: str
    table: VectorTable
    #: Epoch and sizes of the files as this process last wrote or read them; ``None`` when
    #: unknown (never written, or the last write failed), which forces a full base next time.
    epoch: str | None = None
    base_bytes: int = 0
    log_bytes: int = 0


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


class ConceptIndex:
    """Per-user indexes kept in memory (LRU, capped in bytes) and on disk, always matching the
    database version.

    ``loader(user_id)`` returns the user's :class:`UserVectors`; ``db_version(user_id)`` returns
    the user's current version cheaply (0 for a user without vectors). ``cache_max_bytes`` caps
    the memory of loaded indexes (the index in use is kept even when it alone is larger);
    ``compressed_min_vectors`` is the size from which a user's search starts with the int8 pass.
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
        cache_max_bytes: int = 1 << 30,
        compressed_min_vectors: int = 20_000,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if cache_max_bytes < 0:
            raise ValueError(f"cache_max_bytes must be at least 0, got {cache_max_bytes}")
        if compressed_min_vectors < 1:
            raise ValueError(
                f"compressed_min_vectors must be at least 1, got {compressed_min_vectors}"
            )
        self.index_dir = index_dir
        self.embedder_id = embedder_id
        self.dim = dim
        self.search_threads = search_threads
        self.cache_max_bytes = cache_max_bytes
        self.compressed_min_vectors = compressed_min_vectors
        self._loader = loader
        self._db_version = db_version
        self._files = IndexFiles(index_dir, dim)
        self._users: OrderedDict[int, _UserIndex] = OrderedDict()
        self._bytes: dict[int, int] = {}
        self._held = 0
        self._evictions = 0
        self._guard = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        index_dir.mkdir(parents=True, exist_ok=True)

    def _lock(self, user_id: int) -> threading.Lock:
        return self._stripes[hash(user_id) % _LOCK_STRIPES]

    # -- public operations ------------------------------------------------------------------

    def search(
        self, user_id: int, queries: np.ndarray, k: int, *, version: int | None = None
    ) -> list[list[Hit]]:
        """Exact top-``k`` hits of ``user_id``'s images for each query row, best first.

        All query rows (the crops of one photo) are answered in one call. ``version`` is the
        database version when the caller already read it (else ``db_version`` is asked).
        Raises :class:`IndexEmbedderMismatch` when the user's vectors come from another embedder.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (m, {self.dim}), got {q.shape}")
        if version is None:
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
            table = entry.table
            if table.n == 0:
                return [[] for _ in range(len(q))]
            scores, ids = table.search(q, k, threads=self.search_threads)
            concepts = np.asarray(
                [[table.concept_of(int(i)) for i in row] for row in ids], dtype=np.int64
            ).reshape(ids.shape)
        return [
            [Hit(int(i), int(c), float(s)) for s, i, c in zip(rs, ri, rc, strict=True)]
            for rs, ri, rc in zip(scores, ids, concepts, strict=True)
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
            entry.table.add(ids, concepts, vecs)
            entry.version = new_version
            self._persist_change(user_id, entry, LogRecord(new_version, ids, concepts, vecs))
            self._remember(user_id, entry)

    def remove(self, user_id: int, image_ids: np.ndarray, new_version: int) -> None:
        """Remove images after the database commit that set ``new_version``."""
        ids = _unique_ids(image_ids)
        with self._lock(user_id):
            entry = self._in_place_target(user_id, new_version)
            if entry is None:
                self._rebuild(user_id)
                return
            entry.table.remove(ids)
            entry.version = new_version
            self._persist_change(user_id, entry, LogRecord(new_version, ids))
            self._remember(user_id, entry)

    def forget(self, user_id: int) -> None:
        """Drop a user's index from memory and disk (after the user is deleted)."""
        with self._lock(user_id):
            self._drop(user_id)
            self._files.remove(user_id)

    def size(self, user_id: int) -> int:
        """Number of vectors in the user's index, synced to the database version first."""
        version = self._db_version(user_id)
        with self._lock(user_id):
            return self._synced(user_id, version).table.n

    def stats(self) -> IndexStats:
        """Loaded users, vectors and bytes held now; evictions since start."""
        with self._guard:
            vectors = sum(entry.table.n for entry in self._users.values())
            return IndexStats(len(self._users), vectors, self._held, self._evictions)

    # -- cache ------------------------------------------------------------------------------

    def _get(self, user_id: int) -> _UserIndex | None:
        with self._guard:
            entry = self._users.get(user_id)
            if entry is not None:
                self._users.move_to_end(user_id)
            return entry

    def _remember(self, user_id: int, entry: _UserIndex) -> None:
        """Put or refresh ``entry`` as most recently used, then evict down to the cap."""
        size = entry.table.nbytes
        with self._guard:
            self._users[user_id] = entry
            self._users.move_to_end(user_id)
            self._held += size - self._bytes.get(user_id, 0)
            self._bytes[user_id] = size
            while self._held > self.cache_max_bytes and len(self._users) > 1:
                victim, _ = self._users.popitem(last=False)
                self._held -= self._bytes.pop(victim)
                self._evictions += 1

    def _drop(self, user_id: int) -> None:
        with self._guard:
            if self._users.pop(user_id, None) is not None:
                self._held -= self._bytes.pop(user_id)

    # -- sync -------------------------------------------------------------------------------

    def _in_place_target(self, user_id: int, new_version: int) -> _UserIndex | None:
        """The cached index if it is exactly the state the committed change was applied to."""
        entry = self._get(user_id)
        if entry is None:
            entry = self._read(user_id)
        if (
            entry is None
            or entry.version != new_version - 1
            or entry.embedder_id != self.embedder_id
        ):
            return None
        return entry

    def _synced(self, user_id: int, version: int) -> _UserIndex:
        entry = self._get(user_id)
        if entry is not None and entry.version == version:
            return entry
        entry = self._read(user_id)
        if entry is not None and entry.version == version:
            self._remember(user_id, entry)
            return entry
        return self._rebuild(user_id)

    def _new_table(self, ids: np.ndarray, concepts: np.ndarray, vecs: np.ndarray) -> VectorTable:
        table = VectorTable(self.dim, compressed_min=self.compressed_min_vectors)
        table.add(ids, concepts, vecs)
        return table

    def _rebuild(self, user_id: int) -> _UserIndex:
        snapshot = self._loader(user_id)
        ids, concepts, vecs = _rows(
            self.dim, snapshot.image_ids, snapshot.concept_ids, snapshot.vectors
        )
        # An empty user can take vectors from whichever embedder is current.
        embedder_id = snapshot.embedder_id if len(ids) else self.embedder_id
        entry = _UserIndex(snapshot.version, embedder_id, self._new_table(ids, concepts, vecs))
        log.info(
            "rebuilt index of user %s: %d vectors, version %d", user_id, len(ids), entry.version
        )
        self._write_base(user_id, entry)
        self._remember(user_id, entry)
        return entry

    def _read(self, user_id: int) -> _UserIndex | None:
        stored = self._files.read(user_id)
        if stored is None:
            return None
        try:
            return self._from_stored(stored)
        except ValueError as exc:
            log.warning("index files of user %s cannot be used (%s); rebuilding", user_id, exc)
            return None

    def _from_stored(self, stored: StoredIndex) -> _UserIndex:
        table = self._new_table(stored.image_ids, stored.concept_ids, stored.vectors)
        for record in stored.records:
            if record.is_add:
                assert record.concept_ids is not None and record.vectors is not None
                ids, concepts, vecs = _rows(
                    self.dim, record.image_ids, record.concept_ids, record.vectors
                )
                table.add(ids, concepts, vecs)
            else:
                table.remove(_unique_ids(record.image_ids))
        version = stored.records[-1].version if stored.records else stored.version
        embedder_id = stored.embedder_id if table.n else self.embedder_id
        return _UserIndex(
            version, embedder_id, table, stored.epoch, stored.base_bytes, stored.log_bytes
        )

    # -- persistence ------------------------------------------------------------------------

    def _persist_change(self, user_id: int, entry: _UserIndex, record: LogRecord) -> None:
        """Append the change to the log, or write a new base when the log is due for it."""
        if entry.epoch is None or entry.log_bytes > max(entry.base_bytes, _COMPACT_MIN_BYTES):
            self._write_base(user_id, entry)
            return
        try:
            size = self._files.append(user_id, entry.log_bytes, record)
        except OSError as exc:
            self._unsaved(user_id, entry, exc)
            return
        if size is None:
            self._write_base(user_id, entry)
        else:
            entry.log_bytes = size

    def _write_base(self, user_id: int, entry: _UserIndex) -> None:
        table = entry.table
        try:
            entry.epoch, entry.base_bytes, entry.log_bytes = self._files.write_base(
                user_id,
                version=entry.version,
                embedder_id=entry.embedder_id,
                image_ids=table.ids,
                concept_ids=table.concepts,
                vectors=table.vectors,
            )
        except OSError as exc:
            self._unsaved(user_id, entry, exc)

    @staticmethod
    def _unsaved(user_id: int, entry: _UserIndex, exc: OSError) -> None:
        # Memory stays right (it follows the database); the files catch up at the next change,
        # and a restart meanwhile rebuilds from the database.
        entry.epoch = None
        log.warning("index files of user %s not written (%s); serving from memory", user_id, exc)
