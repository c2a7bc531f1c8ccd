"""The compressed first pass returns exactly the exact search's top-k, on hard data too."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from store import vector_table
from store.vector_table import RERANK, VectorTable

DIM = 32
K = 10


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def normalized(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def random_data(rng: np.random.Generator, n: int) -> np.ndarray:
    return normalized(rng.standard_normal((n, DIM), dtype=np.float32))


def clustered_data(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.standard_normal((8, DIM), dtype=np.float32)
    members = centres[rng.integers(0, 8, n)]
    return normalized(members + 0.05 * rng.standard_normal((n, DIM), dtype=np.float32))


def near_duplicate_data(rng: np.random.Generator, n: int) -> np.ndarray:
    base = random_data(rng, 20)
    members = base[rng.integers(0, 20, n)]
    return normalized(members + 1e-4 * rng.standard_normal((n, DIM), dtype=np.float32))


def exact(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(DIM)
    index.add(x)
    scores, ids = index.search(q, k)
    return scores, ids


def assert_same_top_k(
    got: tuple[np.ndarray, np.ndarray],
    want: tuple[np.ndarray, np.ndarray],
    x: np.ndarray,
    q: np.ndarray,
) -> None:
    """Same ids in the same order as exact search, except that rows whose true scores are equal
    within float32 rounding (near-duplicates, chance ties) may take each other's places."""
    (gs, gi), (ws, wi) = got, want
    np.testing.assert_allclose(gs, ws, atol=1e-5)
    truth = x.astype(np.float64) @ q.astype(np.float64).T
    for j, (g, w) in enumerate(zip(gi, wi, strict=True)):
        np.testing.assert_allclose(truth[g, j], truth[w, j], atol=1e-6)  # rank by rank
        kth = truth[w, j].min()
        assert all(abs(truth[i, j] - kth) <= 1e-6 for i in set(g) ^ set(w))


@pytest.mark.parametrize("make", [random_data, clustered_data, near_duplicate_data])
def test_compressed_search_returns_the_exact_top_k(make, rng: np.random.Generator) -> None:
    n = 4000  # far more rows than one re-rank takes, so the error bound decides
    x = make(rng, n)
    table = VectorTable(DIM, compressed_min=1000)
    table.add(np.arange(n), np.arange(n) // 4, x)
    assert table.compressed
    queries = np.concatenate([x[rng.integers(0, n, 40)], random_data(rng, 40)])
    got = table.search(queries, K)
    assert_same_top_k(got, exact(x, queries, K), x, queries)


def test_one_tight_cluster_under_coarse_codes_matches(rng: np.random.Generator) -> None:
    # Nearly every row is in one tight cluster while a few spread-out rows make the codes
    # coarse: the approximate order inside the cluster is mostly noise.
    n = RERANK * 8
    x = normalized(
        np.ones((n, DIM), dtype=np.float32) + 1e-3 * rng.standard_normal((n, DIM), dtype=np.float32)
    )
    table = VectorTable(DIM, compressed_min=10)
    table.add(np.arange(n), np.zeros(n, dtype=np.int64), x)
    q = x[:5]
    assert_same_top_k(table.search(q, K), exact(x, q, K), x, q)


def test_exact_below_the_threshold_and_compressed_above(rng: np.random.Generator) -> None:
    table = VectorTable(DIM, compressed_min=100)
    x = random_data(rng, 150)
    table.add(np.arange(99), np.zeros(99, dtype=np.int64), x[:99])
    assert not table.compressed
    table.add(np.arange(99, 150), np.zeros(51, dtype=np.int64), x[99:])
    assert table.compressed
    assert_same_top_k(table.search(x[:7], 5), exact(x, x[:7], 5), x, x[:7])
    table.remove(np.arange(0, 60))
    assert not table.compressed and table.n == 90
    rest, q = x[60:], x[60:63]
    assert_same_top_k(table.search(q, 5), _shifted(exact(rest, q, 5), 60), x, q)


def _shifted(result: tuple[np.ndarray, np.ndarray], by: int) -> tuple[np.ndarray, np.ndarray]:
    return result[0], result[1] + by


def test_rows_added_later_outside_the_trained_range_stay_exact(
    rng: np.random.Generator,
) -> None:
    # Clamped codes make the approximate scores of the new rows far off: only the per-row
    # error bound and the range pass it triggers find them.
    table = VectorTable(DIM, compressed_min=50)
    small = 0.1 * random_data(rng, 3000)  # trains a narrow range
    table.add(np.arange(3000), np.zeros(3000, dtype=np.int64), small)
    wide = random_data(rng, 200)  # clamped by the codes: the stored error covers it
    table.add(np.arange(3000, 3200), np.zeros(200, dtype=np.int64), wide)
    x = np.concatenate([small, wide])
    q = random_data(rng, 20)
    assert_same_top_k(table.search(q, K), exact(x, q, K), x, q)


def test_replace_remove_and_memory_overhead(rng: np.random.Generator) -> None:
    table = VectorTable(DIM, compressed_min=10_000)
    for i in range(60):  # one photo at a time, as uploads come
        table.add(np.array([i]), np.array([i]), random_data(rng, 1))
    payload = 60 * (DIM * 4 + 16)
    assert table.nbytes < 1.6 * payload + 60 * 100  # growth by a quarter, not doubling
    new = random_data(rng, 1)
    table.add(np.array([5]), np.array([77]), new)  # replaces image 5
    assert table.n == 60 and table.concept_of(5) == 77
    scores, ids = table.search(new, 1)
    assert ids[0, 0] == 5 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    table.remove(np.array([5, 999]))
    assert table.n == 59 and table.concept_of(5) is None


def crops_of(rng: np.random.Generator, x: np.ndarray, crops: int) -> np.ndarray:
    """Query vectors like the crops of one photo: one row of ``x`` and nearby directions."""
    centre = x[rng.integers(0, len(x))]
    return normalized(centre + 0.3 * random_data(rng, crops))


@pytest.mark.parametrize("make", [random_data, clustered_data, near_duplicate_data])
def test_crops_of_one_query_are_exact_in_one_pass_over_the_codes(
    make, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vector_table, "_BLOCK", 700)  # several blocks, a partial last one
    n = 4000
    x = make(rng, n)
    table = VectorTable(DIM, compressed_min=1000)
    table.add(np.arange(n), np.arange(n) // 4, x)
    passes: list[int] = []
    scores = vector_table._int8_scores

    def counted(q: torch.Tensor, packed: object) -> torch.Tensor:
        passes.append(len(q))
        return scores(q, packed)

    monkeypatch.setattr(vector_table, "_int8_scores", counted)
    for _ in range(5):
        passes.clear()
        q = crops_of(rng, x, 6)
        assert_same_top_k(table.search(q, K), exact(x, q, K), x, q)
        # Each full block is scored once for all six crops (+ the query probe); the last 500
        # rows are not a full block yet and are scored in fp32.
        assert passes == [6] * (n // 700 + 1)


def test_spiky_queries_and_repacked_blocks_stay_exact(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A query dominated by one coordinate quantises the others coarsely; adds after the
    # compression and removals in the middle repack blocks: the bound covers every case.
    monkeypatch.setattr(vector_table, "_BLOCK", 512)
    table = VectorTable(DIM, compressed_min=1000)
    x = clustered_data(rng, 3000)
    table.add(np.arange(1500), np.zeros(1500, dtype=np.int64), x[:1500])
    for start in range(1500, 3000, 300):
        rows = np.arange(start, start + 300)
        table.add(rows, np.zeros(300, dtype=np.int64), x[rows])
    table.remove(np.arange(700, 900))
    kept = np.concatenate([np.arange(700), np.arange(900, 3000)])
    spiky = random_data(rng, 6)
    spiky[:, 3] = 40.0
    q = np.concatenate([normalized(spiky), crops_of(rng, x, 6)])
    got = table.search(q, K)
    want_scores, want_pos = exact(x[kept], q, K)
    assert_same_top_k(got, (want_scores, kept[want_pos]), x, q)


def test_int8_pass_runs_on_the_callers_thread_count_and_restores_it(
    rng: np.random.Generator,
) -> None:
    x = random_data(rng, 2000)
    table = VectorTable(DIM, compressed_min=1000)
    table.add(np.arange(2000), np.zeros(2000, dtype=np.int64), x)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as a worker thread whose embedder uses two
    seen: list[int] = []
    scores = vector_table._int8_scores

    def spy(q: torch.Tensor, packed: object) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return scores(q, packed)

    vector_table._int8_scores = spy  # type: ignore[assignment]
    try:
        table.search(x[:6], K, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        vector_table._int8_scores = scores
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
