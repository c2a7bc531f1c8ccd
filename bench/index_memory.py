"""Index memory per API replica: resident memory of one process holding the FAISS indexes of
N users (10 reference photos each, 768-d ViT-L/14-336 vectors), as a replica's cache does once
those users have captioned. Each replica caches the users it serves; DEPLOY.md sizes pods from
this.

Run from the repository root: ``python -m bench.index_memory`` (under a minute; it updates the
index-memory section of BENCHMARKS.md). ``--quick`` measures 200 users and writes nothing.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.markdown import cpu_model, write_section
from store.index import ConceptIndex, UserVectors

DIM = 768
PHOTOS_PER_USER = 10


def rss_bytes() -> int:
    """This process's resident set size, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _vectors(user_id: int) -> UserVectors:
    rng = np.random.default_rng(user_id)
    vecs = rng.standard_normal((PHOTOS_PER_USER, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(user_id * 100, user_id * 100 + PHOTOS_PER_USER, dtype=np.int64)
    return UserVectors(1, "bench", ids, ids // 2, vecs)


def measure(users: int, index_dir: Path) -> tuple[int, int]:
    """RSS before and after every user's index is loaded and searched once."""
    index = ConceptIndex(index_dir, _vectors, lambda _user: 1, embedder_id="bench", dim=DIM)
    query = np.ones((5, DIM), dtype=np.float32) / np.sqrt(DIM)
    index.search(0, query, 4)  # FAISS and numpy warm, not counted
    gc.collect()
    before = rss_bytes()
    for user in range(1, users + 1):
        index.search(user, query, 4)
    gc.collect()
    return before, rss_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 users, write nothing")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    users = 200 if args.quick else args.users
    with tempfile.TemporaryDirectory() as tmp:
        before, after = measure(users, Path(tmp))
    grown = after - before
    per_1000 = grown / users * 1000
    raw = PHOTOS_PER_USER * DIM * 4
    print(
        f"{users} users x {PHOTOS_PER_USER} photos: RSS {before / 2**20:.0f} -> "
        f"{after / 2**20:.0f} MiB, {per_1000 / 2**20:.1f} MiB per 1,000 users "
        f"({raw / 1024:.0f} KiB of raw vectors per user)"
    )
    if args.quick:
        return
    body = "\n".join(
        [
            "## Index memory per replica (FAISS caches, CPU)",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu_model()} with "
            "`python -m bench.index_memory`: one process loads and searches the index of each "
            f"of {users} users ({PHOTOS_PER_USER} photos each, {DIM}-d vectors).",
            "",
            "| Users | RSS before | RSS after | Per 1,000 users | Raw vectors per 1,000 users |",
            "| --- | --- | --- | --- | --- |",
            f"| {users} | {before / 2**20:.0f} MiB | {after / 2**20:.0f} MiB | "
            f"{per_1000 / 2**20:.1f} MiB | {raw * 1000 / 2**20:.1f} MiB |",
        ]
    )
    write_section(args.output, "index-memory", body)


if __name__ == "__main__":
    main()
