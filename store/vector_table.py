"""One user's vectors in memory: exact fp32 rows, and int8 codes for a compressed first pass.

Search is exact in what it returns. Below ``compressed_min`` vectors it is one exhaustive fp32
scan (FAISS ``knn``). From ``compressed_min`` on, every row also has an int8 copy (one scale per
row), packed for FBGEMM's int8 matrix product: all queries of a search (one photo's crops) are
scored against all codes in one pass over a quarter of the fp32 bytes, then the candidates are
re-scored with the fp32 rows.

Why the result is exact: with ``x'`` a row's code and ``q'`` the query as the int8 kernel
quantises it (read back through a small identity probe), the approximate score is ``q'.x'`` and
``|q.x - q'.x'| <= |q| |x - x'| + |x'| |q - q'|``, plus float rounding (``_ROUNDING`` absolute,
``_RELATIVE`` of ``|q| |x'|``). Call the largest such bound over the rows ``B``. The exact
scores of the best ``RERANK`` approximate rows give a k-th score ``t`` that is no higher than
the true k-th score, so every row of the true top-k has an approximate score of at least
``t - B``; all those rows are re-scored exactly and the top-k is taken from them. The top-k is
therefore the exact search's top-k (up to float rounding between rows whose exact scores tie
within ``_ROUNDING``). Activations are quantised to 7 bits (``reduce_range``) so that the
kernel's 16-bit pair sums cannot saturate on CPUs without VNNI.

Rows live in arrays that grow by a quarter, not double, so little memory sits unused; removal
keeps the order of the remaining rows. Codes are packed in blocks of ``_BLOCK`` rows; rows
after the last full block are scored in fp32 until they fill one, so adds stay O(added rows).
"""

from __future__ import annotations

import threading
import warnings

import faiss
import numpy as np
import torch

#: Best approximate rows re-scored exactly per query to set the threshold ``t``.
RERANK = 32
#: Slack for float rounding in both the approximate and the exact scores.
_ROUNDING = 1e-4
_RELATIVE = 1e-5
_DICT_ENTRY_BYTES = 100  # CPython dict slot + boxed int key and value, roughly
#: Rows per packed block. Adds go to an fp32 tail that is packed once it fills a block.
_BLOCK = 4096
_scratch = threading.local()


def _gather(vecs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``vecs[rows]`` into a per-thread buffer: a fresh array per query costs page faults."""
    buf: np.ndarray | None = getattr(_scratch, "buf", None)
    if buf is None or buf.shape[0] < len(rows) or buf.shape[1] != vecs.shape[1]:
        buf = np.empty((max(len(rows), 1024), vecs.shape[1]), dtype=np.float32)
        _scratch.buf = buf
    out = buf[: len(rows)]
    np.take(vecs, rows, axis=0, out=out)
    return out


def _pack(rows: np.ndarray) -> tuple[object, np.ndarray, np.ndarray]:
    """Per-row symmetric int8 codes packed for FBGEMM, with each row's ``|x - x'|`` and ``|x'|``."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    amax = np.abs(x).max(axis=1)
    scales = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint(x / scales[:, None]), -127, 127).astype(np.int8)
    decoded = codes * scales[:, None]  # x', as the kernel scales its integer sums
    err = np.linalg.norm(x - decoded, axis=1)
    norm = np.linalg.norm(decoded, axis=1)
    with warnings.catch_warnings():  # quantized tensors are deprecated (torch is pinned)
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch._make_per_channel_quantized_tensor(
            torch.from_numpy(codes),
            torch.from_numpy(scales.astype(np.float64)),
            torch.zeros(len(x), dtype=torch.long),
            0,
        )
    packed = torch.ops.quantized.linear_prepack(quantized, None)
    return packed, err, norm


def _int8_scores(q: torch.Tensor, packed: object) -> torch.Tensor:
    """``q'.x'`` for every query and code of one packed block (FBGEMM, 7-bit activations)."""
    out: torch.Tensor = torch.ops.quantized.linear_dynamic(q, packed, True)
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
        self._norm = np.zeros(0, dtype=np.float32)
        self._pos: dict[int, int] = {}
        self._blocks: list[object] | None = None  # packed int8 codes, ``_BLOCK`` rows each

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
        """Whether searches start with the int8 pass."""
        return self._blocks is not None

    def concept_of(self, image_id: int) -> int | None:
        """The concept of an image in the table, or ``None``."""
        pos = self._pos.get(image_id)
        return None if pos is None else int(self._concepts[pos])

    @property
    def nbytes(self) -> int:
        """Memory held, allocated capacity included."""
        held = self._ids.nbytes + self._concepts.nbytes + self._vecs.nbytes + self._err.nbytes
        held += self._norm.nbytes + len(self._pos) * _DICT_ENTRY_BYTES
        if self._blocks is not None:
            held += self.n * (self.dim + 8)  # int8 codes and a float64 scale per row
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
        if self._blocks is not None:
            self._repack(start)
        elif self.n >= self.compressed_min:
            self._blocks = []
            self._repack(0)

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
        self.n = n
        self._pos = {int(i): p for p, i in enumerate(self._ids[:n].tolist())}
        if self._blocks is not None:
            if n < self.compressed_min:
                self._blocks = None
            else:
                self._repack(min(gone))

    def _reserve(self, rows: int) -> None:
        capacity = len(self._ids)
        if rows <= capacity:
            return
        # A quarter more than needed, not double: memory per loaded user is what caps the cache.
        grown = max(rows, capacity + capacity // 4) if capacity else rows
        for name in ("_ids", "_concepts", "_err", "_norm"):
            old = getattr(self, name)
            new = np.zeros(grown, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        vecs = np.zeros((grown, self.dim), dtype=np.float32)
        vecs[: self.n] = self._vecs[: self.n]
        self._vecs = vecs

    def _repack(self, start: int) -> None:
        """Re-encode the full blocks from the one holding row ``start`` on; the rows after the
        last full block stay a tail that searches score in fp32."""
        assert self._blocks is not None
        first = min(start // _BLOCK, len(self._blocks))
        del self._blocks[first:]
        for lo in range(first * _BLOCK, self.n - _BLOCK + 1, _BLOCK):
            packed, err, norm = _pack(self._vecs[lo : lo + _BLOCK])
            self._blocks.append(packed)
            self._err[lo : lo + _BLOCK], self._norm[lo : lo + _BLOCK] = err, norm

    # -- search -----------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, *, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``min(k, n)`` (scores, image ids) per query row, best first.

        ``threads``: torch threads for the int8 pass, set for the calling thread only and
        restored after (the embedder on the same worker thread keeps its own count). Two
        OpenMP teams (torch's and FAISS's) spinning on shared cores cost far more than one
        thread's scan.
        """
        k = min(k, self.n)
        m = len(queries)
        if k == 0:
            return np.zeros((m, 0), dtype=np.float32), np.zeros((m, 0), dtype=np.int64)
        if self._blocks is None:
            # From three queries on, FAISS's BLAS path reads the fp32 rows once for all of them.
            scores, pos = faiss.knn(queries, self.vectors, k, faiss.METRIC_INNER_PRODUCT)
            return scores, self._ids[pos]
        before = torch.get_num_threads()  # this thread's count (an OpenMP per-thread setting)
        torch.set_num_threads(threads)
        try:
            return self._search_compressed(np.ascontiguousarray(queries, dtype=np.float32), k)
        finally:
            torch.set_num_threads(before)

    def _search_compressed(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._blocks is not None
        q = torch.from_numpy(queries)
        # One pass over the codes for all queries: each block is read once for every query.
        parts = [_int8_scores(q, block) for block in self._blocks]
        tail = self.vectors[len(self._blocks) * _BLOCK :]
        if len(tail):  # not yet a full block: exact scores, no error to bound
            parts.append(q @ torch.from_numpy(tail).T)  # torch: numpy's BLAS threads here
        approx = torch.cat(parts, dim=1)
        bound = self._bound(queries, q)
        wide = min(self.n, max(k, RERANK))
        top = torch.topk(approx, wide, dim=1, sorted=False).indices.numpy()
        approx_np = approx.numpy()
        out_scores = np.empty((len(queries), k), dtype=np.float32)
        out_pos = np.empty((len(queries), k), dtype=np.int64)
        for j, query in enumerate(queries):
            rows = np.sort(top[j])
            scores, order = self._exact_top(query, rows, k)
            if wide < self.n:
                # Every row that can reach the k-th exact score found so far.
                reach = np.flatnonzero(approx_np[j] >= float(scores[-1]) - bound[j])
                more = np.union1d(rows, reach)
                if len(more) > len(rows):
                    scores, order = self._exact_top(query, more, k)
            out_scores[j], out_pos[j] = scores, order
        return out_scores, self._ids[out_pos]

    def _bound(self, queries: np.ndarray, q: torch.Tensor) -> np.ndarray:
        """Per query, the largest ``|q.x - q'.x'|`` over the rows (see the module docstring)."""
        quantized = _int8_scores(q, _probe(self.dim)).numpy().astype(np.float64)
        exact = queries.astype(np.float64)
        q_err = np.linalg.norm(exact - quantized, axis=1)
        q_norm = np.linalg.norm(exact, axis=1)
        packed = len(self._blocks or ()) * _BLOCK
        if packed == 0:
            return np.full(len(queries), _ROUNDING)
        err = float(self._err[:packed].max())
        norm = float(self._norm[:packed].max())
        bound: np.ndarray = q_norm * err + norm * q_err + _RELATIVE * q_norm * norm + _ROUNDING
        return bound

    def _exact_top(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        exact = _gather(self._vecs, rows) @ q
        # Best score first; equal scores in row order, as the exhaustive scan keeps them.
        order = np.lexsort((rows, -exact))[:k]
        return exact[order].astype(np.float32), rows[order]


_probes: dict[int, object] = {}


def _probe(dim: int) -> object:
    """The identity as packed int8 codes: scoring a batch against it returns ``q'``."""
    if dim not in _probes:
        _probes[dim] = _pack(np.eye(dim, dtype=np.float32))[0]
    return _probes[dim]


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
