"""ConceptIndex against an in-memory stand-in for the database, and merge_region_hits."""

from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from store.index import (
    Hit,
    IndexEmbedderMismatch,
)
from store.merge import RetrievedConcept, merge_region_hits
from store.vector_table import configure_faiss
from tests.helpers.index import DIM, EMBEDDER, FakeDb, make_index, seeded, unit


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def ids_of(hits: list[list[Hit]]) -> list[list[int]]:
    return [[h.image_id for h in row] for row in hits]


def test_exact_search_finds_each_vector_itself(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 200, 1000)
    hits = make_index(tmp_path, db).search(1, vectors, k=5)
    assert [row[0].image_id for row in hits] == list(range(1000, 1200))
    assert all(abs(row[0].score - 1.0) < 1e-5 for row in hits)
    assert hits[7][0].concept_id == 1007 // 3
    brute = vectors @ vectors.T
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :5] + 1000
    assert ids_of(hits) == expected.tolist()
    np.testing.assert_allclose([[h.score for h in r] for r in hits], -np.sort(-brute)[:, :5], 1e-5)


@pytest.fixture
def service_faiss_settings():
    threshold, threads = faiss.cvar.distance_compute_blas_threshold, faiss.omp_get_max_threads()
    configure_faiss(dim=DIM)
    yield
    faiss.cvar.distance_compute_blas_threshold = threshold
    faiss.omp_set_num_threads(threads)


@pytest.mark.usefixtures("service_faiss_settings")
def test_crop_batches_stay_exact_under_service_settings(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 300, 0)
    index = make_index(tmp_path, db)
    for batch in (vectors[:1], vectors[:2], vectors[10:16]):  # below and above the BLAS switch
        hits = index.search(1, batch, k=3)
        brute = batch @ vectors.T
        assert ids_of(hits) == np.argsort(-brute, axis=1, kind="stable")[:, :3].tolist()
        np.testing.assert_allclose(
            [[h.score for h in r] for r in hits], -np.sort(-brute)[:, :3], atol=1e-5
        )
    with pytest.raises(ValueError, match="threads"):
        configure_faiss(dim=DIM, threads=0)


def test_k_larger_than_index_and_empty_user(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 3, 0)
    index = make_index(tmp_path, db)
    assert [len(row) for row in index.search(1, vectors[:2], k=10)] == [3, 3]
    assert index.search(2, vectors[:2], k=10) == [[], []]


def test_add_and_remove_apply_in_place(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 10, 0)
    index = make_index(tmp_path, db)
    index.search(1, unit(rng, 1), k=1)
    assert db.loads == 1
    new = unit(rng, 2)
    version = db.commit_add(1, [50, 51], [9, 9], new)
    index.add(1, np.array([50, 51]), np.array([9, 9]), new, version)
    top = index.search(1, new, k=1)
    assert [row[0] for row in ids_of(top)] == [50, 51]
    assert top[0][0].concept_id == 9
    version = db.commit_remove(1, [50, 3])
    index.remove(1, np.array([50, 3]), version)
    assert index.size(1) == 10
    assert 50 not in ids_of(index.search(1, new, k=10))[0]
    assert db.loads == 1  # no rebuild along the way


def test_re_adding_an_image_replaces_it(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 4, 0)
    index = make_index(tmp_path, db)
    assert index.size(1) == 4
    replacement = unit(rng, 1)
    version = db.commit_add(1, [2], [7], replacement)
    index.add(1, np.array([2]), np.array([7]), replacement, version)
    assert index.size(1) == 4
    best = index.search(1, replacement, k=1)[0][0]
    assert (best.image_id, best.concept_id) == (2, 7)
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert db.loads == 1


def test_index_survives_a_new_process(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 30, 0)
    first = make_index(tmp_path, db)
    added = unit(rng, 1)
    first.search(1, vectors, k=3)
    first.add(1, np.array([99]), np.array([5]), added, db.commit_add(1, [99], [5], added))
    before = first.search(1, vectors, k=3)
    loads = db.loads
    second = make_index(tmp_path, db)
    assert second.search(1, vectors, k=3) == before
    assert second.search(1, added, k=1)[0][0].image_id == 99
    assert db.loads == loads  # served from the files


def test_deleted_files_are_rebuilt_with_identical_results(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 50, 0)
    before = make_index(tmp_path, db).search(1, vectors, k=4)
    for path in tmp_path.iterdir():
        path.unlink()
    loads = db.loads
    assert make_index(tmp_path, db).search(1, vectors, k=4) == before
    assert db.loads == loads + 1
    assert {p.name for p in tmp_path.iterdir()} == {"user_1.idx", "user_1.log"}


def test_crash_between_commit_and_index_update_is_healed(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 10, 0)
    make_index(tmp_path, db).search(1, unit(rng, 1), k=1)
    lost = unit(rng, 1)
    db.commit_add(1, [77], [4], lost)  # the process dies before index.add
    db.commit_remove(1, [0])
    restarted = make_index(tmp_path, db)
    assert restarted.search(1, lost, k=1)[0][0].image_id == 77
    assert restarted.size(1) == 10


def test_change_by_another_process_is_picked_up(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 5, 0)
    index = make_index(tmp_path, db)
    assert index.size(1) == 5
    db.commit_remove(1, [1, 2])  # e.g. another replica; this one is never told
    assert index.size(1) == 3


def test_add_after_a_missed_change_rebuilds(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 5, 0)
    index = make_index(tmp_path, db)
    assert index.size(1) == 5
    db.commit_remove(1, [0])  # missed
    new = unit(rng, 1)
    index.add(1, np.array([9]), np.array([3]), new, db.commit_add(1, [9], [3], new))
    assert index.size(1) == 5
    assert 0 not in ids_of(index.search(1, unit(rng, 3), k=5))[0]


def test_torn_files_are_ignored(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 20, 0)
    before = make_index(tmp_path, db).search(1, vectors, k=2)
    faiss_file = tmp_path / "user_1.idx"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-40])
    loads = db.loads
    assert make_index(tmp_path, db).search(1, vectors, k=2) == before
    assert db.loads == loads + 1


def test_users_never_see_each_other(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    alice = seeded(db, rng, 1, 10, 0)
    bob = seeded(db, rng, 2, 10, 100)
    index = make_index(tmp_path, db)
    assert all(i < 100 for row in ids_of(index.search(1, bob, k=10)) for i in row)
    assert all(i >= 100 for row in ids_of(index.search(2, alice, k=10)) for i in row)
    index.forget(2)
    assert not (tmp_path / "user_2.idx").exists()
    assert index.size(1) == 10


def test_concurrent_add_remove_search(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 20, 0)
    seeded(db, rng, 2, 20, 1000)
    index = make_index(tmp_path, db)
    vectors = unit(rng, 200)
    errors: list[BaseException] = []

    def writer(user: int, base: int) -> None:
        for n in range(25):
            image = base + n
            vector = vectors[n + (0 if user == 1 else 100)][None]
            index.add(
                user,
                np.array([image]),
                np.array([image]),
                vector,
                db.commit_add(user, [image], [image], vector),
            )
            if n % 3 == 0:
                index.remove(user, np.array([image]), db.commit_remove(user, [image]))

    def reader(user: int) -> None:
        for _ in range(50):
            for row in index.search(user, vectors[:6], k=4):
                assert all((h.image_id < 1000) == (user == 1) for h in row)

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(writer, 1, 500)),
        threading.Thread(target=guarded, args=(writer, 1, 600)),
        threading.Thread(target=guarded, args=(writer, 2, 2000)),
        threading.Thread(target=guarded, args=(reader, 1)),
        threading.Thread(target=guarded, args=(reader, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for user in (1, 2):
        expected = sorted(db.rows[user])
        everything = index.search(user, vectors[:1], k=1000)[0]
        assert sorted(h.image_id for h in everything) == expected
        fresh = make_index(tmp_path / "fresh", db).search(user, vectors[:1], k=1000)[0]
        assert sorted(h.image_id for h in fresh) == expected


def test_vectors_of_another_embedder_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb(embedder_id="open_clip:ViT-B-32:openai")
    seeded(db, rng, 1, 5, 0)
    index = make_index(tmp_path, db)
    with pytest.raises(IndexEmbedderMismatch, match="repic reindex"):
        index.search(1, unit(rng, 1), k=1)
    assert index.search(2, unit(rng, 1), k=1) == [[]]  # a user without vectors is fine
    new = unit(rng, 1)
    index.add(1, np.array([9]), np.array([1]), new, db.commit_add(1, [9], [1], new))
    with pytest.raises(IndexEmbedderMismatch):
        index.search(1, new, k=1)


def test_empty_user_files_take_the_new_embedder(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    assert make_index(tmp_path, db, "open_clip:old").search(1, unit(rng, 1), k=1) == [[]]
    assert (tmp_path / "user_1.idx").exists()
    index = make_index(tmp_path, db, EMBEDDER)
    assert index.search(1, unit(rng, 1), k=1) == [[]]
    new = unit(rng, 1)
    index.add(1, np.array([4]), np.array([2]), new, db.commit_add(1, [4], [2], new))
    assert index.search(1, new, k=1)[0][0].image_id == 4
    assert db.loads == 1


def test_bad_shapes_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    index = make_index(tmp_path, db)
    with pytest.raises(ValueError, match=r"shape \(m, 16\)"):
        index.search(1, np.zeros((2, 8), dtype=np.float32), k=1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(1, unit(rng, 1), k=0)
    with pytest.raises(ValueError, match="unique"):
        index.add(1, np.array([1, 1]), np.array([1, 1]), unit(rng, 2), 1)
    with pytest.raises(ValueError, match="concept ids"):
        index.add(1, np.array([1, 2]), np.array([1]), unit(rng, 2), 1)


def hit(image: int, concept: int, score: float) -> Hit:
    return Hit(image, concept, score)


def test_merge_keeps_each_concepts_best_hit() -> None:
    merged = merge_region_hits(
        [[hit(1, 10, 0.70), hit(2, 20, 0.65)], [hit(3, 10, 0.90), hit(4, 30, 0.60)]],
        top_k=5,
        min_score=0.0,
    )
    assert merged == [
        RetrievedConcept(10, 3, 0.90, 1),
        RetrievedConcept(20, 2, 0.65, 0),
        RetrievedConcept(30, 4, 0.60, 1),
    ]


def test_merge_applies_floor_then_top_k() -> None:
    regions = [[hit(1, 1, 0.9), hit(2, 2, 0.5)], [hit(3, 3, 0.8), hit(4, 4, 0.61)]]
    assert [c.concept_id for c in merge_region_hits(regions, top_k=2, min_score=0.6)] == [1, 3]
    assert [c.concept_id for c in merge_region_hits(regions, top_k=8, min_score=0.6)] == [1, 3, 4]
    assert [c.concept_id for c in merge_region_hits(regions, top_k=8, min_score=0.61)] == [1, 3, 4]
    assert merge_region_hits(regions, top_k=2, min_score=0.95) == []
    assert merge_region_hits([], top_k=2, min_score=0.0) == []


def test_merge_ties_prefer_earlier_region_then_rank() -> None:
    merged = merge_region_hits(
        [[hit(1, 1, 0.7), hit(2, 2, 0.7)], [hit(3, 3, 0.8), hit(4, 1, 0.8), hit(5, 4, 0.7)]],
        top_k=3,
        min_score=0.0,
    )
    assert [(c.concept_id, c.image_id, c.region_index) for c in merged] == [
        (3, 3, 1),
        (1, 4, 1),
        (2, 2, 0),
    ]


def test_merge_top_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="top_k"):
        merge_region_hits([[hit(1, 1, 0.9)]], top_k=0, min_score=0.0)
