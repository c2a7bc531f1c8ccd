"""Index measurements that `bench.retrieval` adds to its section: the compressed scan against
exact search and the fp32 read floor, the cost of one add, and memory per 1,000 users.

Every ratio compares numbers taken in the same run, one after the other.

``python -m bench.index_costs`` runs the compressed scan alone (about two minutes) and replaces
its part of the retrieval section in BENCHMARKS.md; ``--quick`` measures 30k vectors and writes
nothing.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
import torch

from bench.markdown import write_section
from store.index import ConceptIndex, UserVectors
from store.index_files import IndexFiles
from store.vector_table import VectorTable

DIM = 768
TOP_K = 10
CROPS = 6


def _p50_ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return float(np.median(out))


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _crops(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """Six vectors like one photo's crops: around one query direction."""
    c = centre + 0.3 * _unit(rng, CROPS)
    return np.asarray(c / np.linalg.norm(c, axis=1, keepdims=True), dtype=np.float32)


def _identical(got: np.ndarray, want: np.ndarray, x: np.ndarray, q: np.ndarray) -> tuple[int, int]:
    """(same ids in the same order, equal rank by rank within float32 rounding) per query."""
    same = tied = 0
    for j in range(len(q)):
        same += int(np.array_equal(got[j], want[j]))
        true_got = x[got[j]].astype(np.float64) @ q[j].astype(np.float64)
        true_want = x[want[j]].astype(np.float64) @ q[j].astype(np.float64)
        tied += int(np.allclose(true_got, true_want, atol=1e-6))
    return same, tied


@contextmanager
def _one_core() -> Iterator[int]:
    """Pin this process to one core (the last one it may use) and one thread for FAISS and
    torch, restoring all three afterwards."""
    cores = os.sched_getaffinity(0)
    core = max(cores)
    torch_threads = torch.get_num_threads()
    os.sched_setaffinity(0, {core})
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    try:
        yield core
    finally:
        torch.set_num_threads(torch_threads)
        os.sched_setaffinity(0, cores)


def _rounds(
    fns: dict[str, Callable[[], object]], rounds: int, warmup: int
) -> dict[str, np.ndarray]:
    """ms per call of every function, measured round-robin: each round times each function once,
    in an order rotated per round, so that load from other processes, which drifts over seconds,
    falls on all of them alike and per-round ratios cancel it."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            out[name].append((time.perf_counter() - start) * 1e3)
    return {name: np.asarray(times) for name, times in out.items()}


def _ratio_cell(times: np.ndarray, floor: np.ndarray) -> str:
    """Median of the per-round ratios, with their quartiles (the noise between rounds)."""
    ratio = times / floor
    q1, med, q3 = np.percentile(ratio, [25, 50, 75])
    return f"{med:.2f}x ({q1:.2f}-{q3:.2f})"


def compressed_scan(n: int, rounds: int, checks: int) -> str:
    """Exact vs int8 pass + exact re-rank on ``n`` clustered vectors, with the identical-top-k
    checks for single queries and for the crops of one query.

    Timing: pinned to one core and one thread, a warm-up, then ``rounds`` round-robin rounds of
    the fp32 read floor and the four searches (see :func:`_rounds`); the ratios are medians of
    per-round ratios, with their quartiles."""
    rng = np.random.default_rng(3)
    centres = _unit(rng, 256)
    x = centres[rng.integers(0, 256, n)] + 0.6 * _unit(rng, n) / np.sqrt(2.0)
    x = np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)
    ids = np.arange(n)
    exact = VectorTable(DIM, compressed_min=n + 1)
    exact.add(ids, ids, x)
    compressed = VectorTable(DIM, compressed_min=1)
    compressed.add(ids, ids, x)
    q = x[rng.integers(0, n, checks)] + 0.05 * _unit(rng, checks)
    q = np.asarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)
    crops = _crops(rng, q[0])
    with _one_core() as core:
        t = _rounds(
            {
                "floor": x.max,
                "e1": lambda: exact.search(q[:1], TOP_K),
                "c1": lambda: compressed.search(q[:1], TOP_K),
                "e6": lambda: exact.search(crops, TOP_K),
                "c6": lambda: compressed.search(crops, TOP_K),
            },
            rounds,
            warmup=3,
        )
        _, want = exact.search(q, TOP_K)
        got = np.concatenate([compressed.search(q[j : j + 1], TOP_K)[1] for j in range(checks)])
        same, tied = _identical(got, want, x, q)
        groups = max(1, checks // 8)
        multi = [_crops(rng, q[j]) for j in range(groups)]
        got6 = np.concatenate([compressed.search(c, TOP_K)[1] for c in multi])
        want6 = np.concatenate([exact.search(c, TOP_K)[1] for c in multi])
        same6, tied6 = _identical(got6, want6, x, np.concatenate(multi))

    def ms(name: str) -> str:
        return f"{np.min(t[name]):.2f} / {np.median(t[name]):.2f}"

    # The exact scan reads every fp32 byte once too: where it is the faster read, it is the floor.
    floor = np.minimum(t["floor"], t["e1"])
    t["read"] = floor
    rows = [
        [
            "fp32 read: `max` over the same array",
            ms("floor"),
            _ratio_cell(t["floor"], floor),
            "",
            "",
        ],
        ["fp32 read floor: the faster of the two reads, per round", ms("read"), "1.00x", "", ""],
        [
            "exact (fp32 scan)",
            ms("e1"),
            _ratio_cell(t["e1"], floor),
            ms("e6"),
            _ratio_cell(t["e6"], floor),
        ],
        [
            "int8 pass + exact re-rank (service above the threshold)",
            ms("c1"),
            _ratio_cell(t["c1"], floor),
            ms("c6"),
            _ratio_cell(t["c6"], floor),
        ],
    ]
    headers = [
        "search",
        "1 query ms (min / p50)",
        "vs floor, median of rounds (quartiles)",
        f"{CROPS} crops of 1 query ms (min / p50)",
        "vs floor, median of rounds (quartiles)",
    ]
    return "\n\n".join(
        [
            f"Compressed scan on {n:,} clustered vectors (d = {DIM}, k = {TOP_K}; pinned to core "
            f"{core}, one thread; {rounds} round-robin rounds after a warm-up, each timing the "
            "floor and the four searches once, in a rotated order; a ratio is the median of the "
            "per-round ratios, the quartiles in brackets show the noise between rounds). The "
            "floor of a round is its faster full read of the fp32 array: `max` over it, or the "
            "exact scan of one query, which reads every byte once as well:",
            _table(headers, rows),
            f"Identical top-{TOP_K} (same ids, same order) in {same}/{checks} single queries and "
            f"{same6}/{groups * CROPS} crop queries ({groups} photos of {CROPS} crops, searched "
            f"together); equal rank by rank within float32 rounding of the true scores in "
            f"{tied}/{checks} and {tied6}/{groups * CROPS}.",
        ]
    )


class _Db:
    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.version = 1

    def load(self, _user: int) -> UserVectors:
        n = len(self.vectors)
        return UserVectors(self.version, "bench", np.arange(n), np.arange(n), self.vectors)


def _add_row(n: int, reps: int, rng: np.random.Generator) -> list[str]:
    db = _Db(_unit(rng, n))
    with tempfile.TemporaryDirectory() as tmp:
        index = ConceptIndex(
            Path(tmp), db.load, lambda _u: db.version, embedder_id="bench", dim=DIM
        )
        index.size(1)
        new = _unit(rng, reps)
        times = []
        for i in range(reps):
            start = time.perf_counter()
            index.add(1, np.array([n + i]), np.array([0]), new[i : i + 1], db.version + 1)
            times.append((time.perf_counter() - start) * 1e3)
            db.version += 1
        files = IndexFiles(Path(tmp), DIM)
        ids = np.arange(n)
        rewrite = _p50_ms(
            lambda: files.write_base(
                2, version=1, embedder_id="b", image_ids=ids, concept_ids=ids, vectors=db.vectors
            ),
            5,
        )
    add = float(np.median(times))
    return [f"{n:,}", f"{add:.3f}", f"{rewrite:.2f}", f"{rewrite / add:.0f}x"]


def add_cost(sizes: list[int], reps: int) -> str:
    """One photo added to a user of ``n`` vectors: append to the log vs rewriting the file."""
    rng = np.random.default_rng(4)
    rows = [_add_row(n, reps, rng) for n in sizes]
    headers = ["vectors", "add 1 vector ms (log append)", "full-file rewrite ms", "rewrite / add"]
    return _table(headers, rows)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _grow(kind: str, users: int, per_user: int, cap: int) -> tuple[float, int, int, int]:
    """In a fresh process: RSS growth (MB), bytes held, loaded users and evictions."""
    rng = np.random.default_rng(5)
    gc.collect()
    before = _rss_mb()
    if kind == "faiss":  # the structure before: IndexIDMap2 over IndexFlatIP per user
        held = []
        for _user in range(users):
            idx = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
            for i in range(per_user):
                idx.add_with_ids(_unit(rng, 1), np.array([i], dtype=np.int64))
            held.append(idx)
        return _rss_mb() - before, 0, users, 0
    versions: dict[int, int] = {}
    rows: dict[int, list[np.ndarray]] = {}

    def load(user: int) -> UserVectors:  # the database's copy (of the current user only)
        vecs = np.asarray(rows.get(user, []), dtype=np.float32).reshape(-1, DIM)
        ids = np.arange(len(vecs))
        return UserVectors(versions.get(user, 0), "bench", ids, ids, vecs)

    with tempfile.TemporaryDirectory() as tmp:
        index = ConceptIndex(
            Path(tmp),
            load,
            lambda u: versions.get(u, 0),
            embedder_id="bench",
            dim=DIM,
            cache_max_bytes=cap,
        )
        for user in range(users):
            rows.clear()  # users are done one after the other; keep RSS to the index alone
            for i in range(per_user):
                vec = _unit(rng, 1)
                rows.setdefault(user, []).append(vec[0])
                versions[user] = versions.get(user, 0) + 1
                index.add(user, np.array([i]), np.array([i]), vec, versions[user])
        stats = index.stats()
        return _rss_mb() - before, stats.bytes_held, stats.loaded_users, stats.evictions


def memory_per_1000_users(users: int, per_user: int, cap_mb: int) -> str:
    """RSS growth for ``users`` users of ``per_user`` vectors, each added one photo at a time,
    each configuration in its own process."""
    rows = []
    configs = (
        ("before: IndexIDMap2 over IndexFlatIP, never evicted", "faiss", 0),
        ("now, no cap", "table", 1 << 62),
        (f"now, cap {cap_mb} MB", "table", cap_mb * 10**6),
    )
    ctx = multiprocessing.get_context("spawn")
    for label, kind, cap in configs:
        with ctx.Pool(1) as pool:
            grown, held, loaded, evictions = pool.apply(_grow, (kind, users, per_user, cap))
        rows.append(
            [
                label,
                f"{grown * 1000 / users:.0f}",
                f"{held * 1000 / users / 1e6:.0f}" if kind == "table" else "",
                str(loaded),
                str(evictions),
            ]
        )
    payload = per_user * DIM * 4 * 1000 / 1e6
    headers = [
        f"{users} users x {per_user} vectors",
        "RSS MB per 1,000 users",
        "index bytes held, MB per 1,000 users",
        "loaded users",
        "evictions",
    ]
    return "\n\n".join(
        [
            _table(headers, rows),
            f"The vectors alone are {payload:.0f} MB per 1,000 users.",
        ]
    )


#: The marker of the compressed-scan part inside the retrieval section of BENCHMARKS.md.
SCAN_SECTION = "compressed-scan"


def scan_block(body: str) -> str:
    """``body`` between the markers :func:`bench.markdown.write_section` replaces."""
    return f"<!-- bench:{SCAN_SECTION}:start -->\n{body}\n<!-- bench:{SCAN_SECTION}:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description="The compressed scan against exact search.")
    parser.add_argument("--quick", action="store_true", help="30k vectors, no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--rounds", type=int, default=100, help="round-robin timing rounds")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    n, checks = (30_000, 100) if args.quick else (100_000, 800)
    body = compressed_scan(n, 10 if args.quick else args.rounds, checks)
    body += (
        f"\n\nCommand: `python -m bench.index_costs` (alone) or `python -m bench.retrieval`; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
    print(body)
    if not args.quick:
        write_section(args.output, SCAN_SECTION, body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
