"""The index's files (base + append-only log), its LRU byte cap, and recovery from bad files."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from store.index import ConceptIndex
from store.index_files import IndexFiles
from tests.helpers.index import DIM, EMBEDDER, FakeDb, make_index, seeded, unit


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def add_one(index: ConceptIndex, db: FakeDb, user: int, image_id: int, vec: np.ndarray) -> None:
    version = db.commit_add(user, [image_id], [image_id], vec)
    index.add(user, np.array([image_id]), np.array([image_id]), vec, version)


def test_adds_append_to_the_log_instead_of_rewriting_the_base(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 200, 0)
    index = make_index(tmp_path, db)
    index.size(1)
    base, log = tmp_path / "user_1.idx", tmp_path / "user_1.log"
    base_stat = base.stat()
    log_size = log.stat().st_size
    added = unit(rng, 5)
    for i in range(5):
        add_one(index, db, 1, 1000 + i, added[i : i + 1])
    assert base.stat().st_mtime_ns == base_stat.st_mtime_ns  # the base was not rewritten
    record = 53 + 8 * 2 + 4 * DIM  # header + ids + concepts + one vector
    assert log.stat().st_size == log_size + 5 * record
    loads = db.loads
    restarted = make_index(tmp_path, db)
    assert restarted.search(1, added[2:3], k=1)[0][0].image_id == 1002
    assert restarted.size(1) == 205 and db.loads == loads  # base + log replayed, no rebuild


def test_the_log_is_folded_into_a_new_base_when_it_outgrows_it(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("store.index._COMPACT_MIN_BYTES", 0)
    db = FakeDb()
    seeded(db, rng, 1, 3, 0)
    index = make_index(tmp_path, db)
    index.size(1)
    for i in range(10):
        add_one(index, db, 1, 100 + i, unit(rng, 1))
    log = tmp_path / "user_1.log"
    assert log.stat().st_size < (tmp_path / "user_1.idx").stat().st_size + 200
    assert make_index(tmp_path, db).size(1) == 13


def test_a_torn_log_tail_is_ignored_and_healed_from_the_database(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 10, 0)
    index = make_index(tmp_path, db)
    index.size(1)
    add_one(index, db, 1, 50, unit(rng, 1))
    add_one(index, db, 1, 51, unit(rng, 1))
    log = tmp_path / "user_1.log"
    log.write_bytes(log.read_bytes()[:-7])  # the process died inside the last append
    loads = db.loads
    restarted = make_index(tmp_path, db)
    assert restarted.size(1) == 12  # the replayed prefix is one version behind: rebuilt
    assert db.loads == loads + 1
    add_one(restarted, db, 1, 52, unit(rng, 1))  # and the files are whole again
    assert make_index(tmp_path, db).size(1) == 13 and db.loads == loads + 1


def test_a_log_of_an_older_base_is_not_replayed(tmp_path: Path, rng: np.random.Generator) -> None:
    db = FakeDb()
    seeded(db, rng, 1, 4, 0)
    index = make_index(tmp_path, db)
    index.size(1)
    old_log = (tmp_path / "user_1.log").read_bytes()
    add_one(index, db, 1, 60, unit(rng, 1))
    stale = old_log + (tmp_path / "user_1.log").read_bytes()[len(old_log) :]
    files = IndexFiles(tmp_path, DIM)
    stored = files.read(1)
    assert stored is not None and len(stored.records) == 1
    # A new base (another epoch) with the previous log left beside it, as after a crash
    # between the two renames: the records must not be applied to it.
    make_index(tmp_path, FakeDb()).forget(1)
    index2 = make_index(tmp_path, db)
    index2.size(1)
    (tmp_path / "user_1.log").write_bytes(stale)
    stored = files.read(1)
    assert stored is not None and stored.records == []


def _rewrite_base(path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    """Change a base file's header or body and recompute its checksum, so the hash matches."""
    data = path.read_bytes()
    magic_len = len(b"RPIDX2\n")
    (header_len,) = struct.unpack_from("<I", data, magic_len)
    header = json.loads(data[magic_len + 4 : magic_len + 4 + header_len])
    body = data[magic_len + 4 + header_len :]
    header, body = mutate(header, body)
    header["sha256"] = hashlib.sha256(body).hexdigest()
    raw = json.dumps(header).encode()
    path.write_bytes(b"RPIDX2\n" + struct.pack("<I", len(raw)) + raw + body)


CORRUPTIONS = {
    # A body cut short although the checksum was computed over what is left.
    "truncated": lambda h, b: (h, b[: len(b) // 2]),
    # A header that claims more rows than the body holds.
    "wrong-count": lambda h, b: ({**h, "n": h["n"] + 3}, b),
    # The same image id twice: the body parses but cannot describe a real index.
    "duplicate-ids": lambda h, b: (h, b[8:16] + b[8:]),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_base_that_does_not_parse_despite_its_checksum_is_rebuilt(
    kind: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 20, 0)
    before = make_index(tmp_path, db).search(1, vectors, k=3)
    _rewrite_base(tmp_path / "user_1.idx", CORRUPTIONS[kind])
    loads = db.loads
    index = make_index(tmp_path, db)
    assert index.search(1, vectors, k=3) == before
    assert db.loads == loads + 1
    assert make_index(tmp_path, db).search(1, vectors, k=3) == before  # rewritten whole
    assert db.loads == loads + 1


def test_failed_writes_are_served_from_memory_and_caught_up_later(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 10, 0)

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(IndexFiles, "write_base", refuse)
    monkeypatch.setattr(IndexFiles, "append", refuse)
    index = make_index(tmp_path, db)
    assert index.search(1, vectors[:1], k=1)[0][0].image_id == 0
    new = unit(rng, 1)
    add_one(index, db, 1, 71, new)
    assert index.search(1, new, k=1)[0][0].image_id == 71
    monkeypatch.undo()
    add_one(index, db, 1, 72, unit(rng, 1))  # the next change writes a whole base
    loads = db.loads
    assert make_index(tmp_path, db).size(1) == 12 and db.loads == loads


def test_lru_cap_evicts_least_recently_used_users_and_counts_it(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    for user in range(1, 6):
        seeded(db, rng, user, 50, user * 1000)
    one_user = 50 * (DIM * 4 + 16 + 4) + 50 * 100
    index = ConceptIndex(
        tmp_path,
        db.load,
        db.version,
        embedder_id=EMBEDDER,
        dim=DIM,
        cache_max_bytes=int(2.5 * one_user),
    )
    for user in range(1, 6):
        index.size(user)
    stats = index.stats()
    assert stats.loaded_users == 2 and stats.evictions == 3
    assert stats.bytes_held <= index.cache_max_bytes and stats.vectors == 100
    loads = db.loads
    assert index.size(1) == 50  # evicted: reloaded from its files, not from the database
    assert db.loads == loads and index.stats().evictions == 4


def test_one_user_larger_than_the_cap_is_still_served(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    db = FakeDb()
    vectors = seeded(db, rng, 1, 30, 0)
    index = ConceptIndex(
        tmp_path, db.load, db.version, embedder_id=EMBEDDER, dim=DIM, cache_max_bytes=0
    )
    assert index.search(1, vectors[:1], k=1)[0][0].image_id == 0
    assert index.stats().loaded_users == 1


def test_locks_do_not_grow_with_the_number_of_users(tmp_path: Path) -> None:
    db = FakeDb()
    index = make_index(tmp_path, db)
    for user in range(500):
        index.size(user)
    assert len({id(index._lock(u)) for u in range(500)}) <= 64
