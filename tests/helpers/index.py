"""An in-memory stand-in for the database behind :class:`store.index.ConceptIndex`, and unit
vectors to fill it with."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from store.index import ConceptIndex, UserVectors

DIM = 16
EMBEDDER = "open_clip:test:sha256-0123"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


class FakeDb:
    """What the repository gives the index: rows per user and a version bumped on every change."""

    def __init__(self, embedder_id: str = EMBEDDER) -> None:
        self.embedder_id = embedder_id
        self.rows: dict[int, dict[int, tuple[int, np.ndarray]]] = {}
        self.versions: dict[int, int] = {}
        self.loads = 0
        self._lock = threading.Lock()

    def commit_add(self, user: int, image_ids, concept_ids, vectors) -> int:
        with self._lock:
            rows = self.rows.setdefault(user, {})
            for i, c, v in zip(image_ids, concept_ids, vectors, strict=True):
                rows[int(i)] = (int(c), v)
            self.versions[user] = self.versions.get(user, 0) + 1
            return self.versions[user]

    def commit_remove(self, user: int, image_ids) -> int:
        with self._lock:
            for i in image_ids:
                self.rows.get(user, {}).pop(int(i), None)
            self.versions[user] = self.versions.get(user, 0) + 1
            return self.versions[user]

    def load(self, user: int) -> UserVectors:
        with self._lock:
            self.loads += 1
            rows = self.rows.get(user, {})
            ids = np.array(sorted(rows), dtype=np.int64)
            return UserVectors(
                version=self.versions.get(user, 0),
                embedder_id=self.embedder_id if rows else "",
                image_ids=ids,
                concept_ids=np.array([rows[i][0] for i in ids.tolist()], dtype=np.int64),
                vectors=np.array([rows[i][1] for i in ids.tolist()], dtype=np.float32).reshape(
                    len(ids), DIM
                ),
            )

    def version(self, user: int) -> int:
        with self._lock:
            return self.versions.get(user, 0)


def make_index(path: Path, db: FakeDb, embedder_id: str = EMBEDDER) -> ConceptIndex:
    return ConceptIndex(path, db.load, db.version, embedder_id=embedder_id, dim=DIM)


def seeded(db: FakeDb, rng: np.random.Generator, user: int, n: int, first_id: int) -> np.ndarray:
    vectors = unit(rng, n)
    ids = np.arange(first_id, first_id + n)
    db.commit_add(user, ids, ids // 3, vectors)  # three images per concept
    return vectors
