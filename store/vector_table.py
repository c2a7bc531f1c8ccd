"""One user's vectors in memory: exact fp32 rows, and SQ8 codes for a compressed first pass.

Search is exact in what it returns. Below ``compressed_min`` vectors it is one exhaustive fp32
scan (FAISS ``knn``: one pass over the rows for a batch of query crops from three queries up).
From ``compressed_min`` on, one or two queries scan an 8-bit scalar-quantised copy (a quarter of
the bytes) first and re-score the best candidates with the fp32 rows; a batch of crops keeps the
one-pass fp32 scan. Every row remembers how far its
code is from it (``err``), so ``|q.x - q.x'| <= |q| * err`` bounds the error of each approximate
score; when the candidates cannot prove that no other row reaches the k-th exact score, every row
whose bound does is re-scored too. The top-k is therefore the exact search's top-k (up to float
rounding between rows whose exact scores tie within ``_ROUNDING``).

Rows live in arrays that grow by a quarter, not double, so little memory sits unused; removal
keeps the order of the remaining rows.
"""

from __future__ import annotations

import threading

import faiss
import numpy as np

#: Candidates re-scored exactly per query before the error bound is checked; when they cannot
#: prove the top-k, a range pass fetches every row that can.
RERANK = 256
#: Slack for float rounding in both the approximate and the exact scores.
_ROUNDING = 1e-4
_DICT_ENTRY_BYTES = 100  # CPython dict slot + boxed int key and value, roughly
_BATCH_EXACT = 3
_scratch = threading.local()


def _gather(vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``vecs[rows]`` into a per-thread buffer: a fresh array per query costs page faults."""
    buf: np.ndarray | None = getattr(_scratch, "buf", None)
    if buf is None or buf.shape[0] < len(rows) or buf.shape[1] != vecs.shape[1]:
        buf = np.empty((max(len(rows), RERANK), vecs.shape[1]), dtype=np.float32)
        _scratch.buf = buf
    out = buf[: len(rows)]
    np.take(vecs, rows, axis=0, out=out)
    return out


class VectorTable:
    """Rows ``(image id, concept id, vector)`` with exact top-k search by inner product."""

    def __init__(self, dim: int, *, compressed_min: int) -> None:
        self.dim = dim
        self.compressed_min = compressed_min
        self.n = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._concepts = np.zeros(0, dtype=np.int64)
        self._vecs = np.zeros((0, dim), dtype=np.float32)
        self._err = np.zeros(0, dtype=np.float32)
        self._pos: dict[int, int] = {}
        self._sq: faiss.IndexScalarQuantizer | None = None
        self._err_max = 0.0

    # -- contents ---------------------------------------------------------------------------

    @property
    def ids(self) -> np.ndarray:
        """Image ids in row order (a view)."""
        return self._ids[: self.n]

    @property
    def concepts(self) -> np.ndarray:
        """Concept ids in row order (a view)."""
        return self._concepts[: self.n]

    @property
    def vectors(self) -> np.ndarray:
        """The fp32 rows (a view)."""
        return self._vecs[: self.n]

    @property
    def compressed(self) -> bool:
        """Whether searches start with the SQ8 scan."""
        return self._sq is not None

    def concept_of(self, image_id: int) -> int | None:
        """The concept of an image in the table, or ``None``."""
        pos = self._pos.get(image_id)
        return None if pos is None else int(self._concepts[pos])

    @property
    def nbytes(self) -> int:
        """Memory held, allocated capacity included."""
        held = self._ids.nbytes + self._concepts.nbytes + self._vecs.nbytes + self._err.nbytes
        held += len(self._pos) * _DICT_ENTRY_BYTES
        if self._sq is not None:
            held += self.n * self._sq.sa_code_size()
        return held

    # -- changes ----------------------------------------------------------------------------

    def add(self, ids: np.ndarray, concepts: np.ndarray, vecs: np.ndarray) -> None:
        """Append rows; an id already present is replaced (its old row removed first)."""
        present = [i for i in ids.tolist() if i in self._pos]
        if present:
            self.remove(np.asarray(present, dtype=np.int64))
        start, count = self.n, len(ids)
        self._reserve(start + count)
        self._ids[start : start + count] = ids
        self._concepts[start : start + count] = concepts
        self._vecs[start : start + count] = vecs
        for offset, image_id in enumerate(ids.tolist()):
            self._pos[image_id] = start + offset
        self.n += count
        if self._sq is not None:
            self._encode(start, self.n)
        elif self.n >= self.compressed_min:
            self._train()

    def remove(self, ids: np.ndarray) -> None:
        """Drop rows by image id (unknown ids are ignored); the others keep their order."""
        gone = [self._pos[i] for i in ids.tolist() if i in self._pos]
        if not gone:
            return
        keep = np.ones(self.n, dtype=bool)
        keep[gone] = False
        n = int(keep.sum())
        self._ids[:n] = self._ids[: self.n][keep]
        self._concepts[:n] = self._concepts[: self.n][keep]
        self._vecs[:n] = self._vecs[: self.n][keep]
        self._err[:n] = self._err[: self.n][keep]
        self.n = n
        self._pos = {int(i): p for p, i in enumerate(self._ids[:n].tolist())}
        if self._sq is not None:
            self._sq.remove_ids(faiss.IDSelectorBatch(np.asarray(gone, dtype=np.int64)))
            if n < self.compressed_min:
                self._sq = None

    def _reserve(self, rows: int) -> None:
        capacity = len(self._ids)
        if rows <= capacity:
            return
        # A quarter more than needed, not double: memory per loaded user is what caps the cache.
        grown = max(rows, capacity + capacity // 4) if capacity else rows
        for name in ("_ids", "_concepts", "_err"):
            old = getattr(self, name)
            new = np.zeros(grown, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        vecs = np.zeros((grown, self.dim), dtype=np.float32)
        vecs[: self.n] = self._vecs[: self.n]
        self._vecs = vecs

    def _train(self) -> None:
        sq = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sq.train(self.vectors)
        self._sq, self._err_max = sq, 0.0
        self._encode(0, self.n)

    def _encode(self, start: int, stop: int) -> None:
        assert self._sq is not None
        rows = np.ascontiguousarray(self._vecs[start:stop])
        codes = self._sq.sa_encode(rows)
        # Rows outside the trained range are clamped: the measured error covers that too.
        err = np.linalg.norm(rows - self._sq.sa_decode(codes), axis=1)
        self._err[start:stop] = err
        if len(err):
            self._err_max = max(self._err_max, float(err.max()))
        self._sq.add_sa_codes(codes)

    # -- search -----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``min(k, n)`` (scores, image ids) per query row, best first."""
        k = min(k, self.n)
        m = len(queries)
        if k == 0:
            return np.zeros((m, 0), dtype=np.float32), np.zeros((m, 0), dtype=np.int64)
        if self._sq is None or m >= _BATCH_EXACT:
            # From three queries on, FAISS's BLAS path reads the fp32 rows once for all of them,
            # which beats one scan of the codes per query.
            scores, pos = faiss.knn(queries, self.vectors, k, faiss.METRIC_INNER_PRODUCT)
            return scores, self._ids[pos]
        return self._search_compressed(queries, k)

    def _search_compressed(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._sq is not None
        rerank = min(self.n, max(RERANK, 4 * k))
        approx, cand = self._sq.search(queries, rerank)
        out_scores = np.empty((len(queries), k), dtype=np.float32)
        out_pos = np.empty((len(queries), k), dtype=np.int64)
        for j, q in enumerate(queries):
            slack = float(np.linalg.norm(q)) * self._err_max + _ROUNDING
            rows = cand[j][cand[j] >= 0]
            scores, order = self._exact_top(q, rows, k)
            if rerank < self.n and float(approx[j, -1]) + slack >= scores[-1]:
                # A row outside the candidates might still reach the k-th score: take them all.
                radius = float(scores[-1]) - slack
                _, _, found = self._sq.range_search(q[None, :], radius - _ROUNDING)
                rows = np.union1d(rows, found)
                scores, order = self._exact_top(q, rows, k)
            out_scores[j], out_pos[j] = scores, order
        return out_scores, self._ids[out_pos]

    def _exact_top(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        exact = _gather(self._vecs, rows) @ q
        # Best score first; equal scores in row order, as the exhaustive scan keeps them.
        order = np.lexsort((rows, -exact))[:k]
        return exact[order].astype(np.float32), rows[order]


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
