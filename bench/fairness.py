"""Fair turns at the captioning model: one user's burst against another user's single caption.

Alice sends a burst of long captions (many new tokens each); right after, Bob sends one short
caption. With first-come-first-served turns Bob waits for the whole burst; with the per-user
fair gate he waits for at most the one caption running. Measured in-process (tiny random-weight
models, the in-process transformers backend: one generation at a time), so the numbers show the
scheduling, not a GPU.

    .venv/bin/python -m bench.fairness            # prints the table, updates BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from app.core.migrate import upgrade
from app.core.quotas import FairGate
from app.core.settings import Settings
from app.main import create_app
from bench.markdown import cpu_model, write_section
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from tests.helpers import images

ADMIN = "bench-admin-token-0123456789"


class FirstComeFirstServed(FairGate):
    """The gate without fairness: every caller is the same user, so turns go in arrival order."""

    @contextlib.asynccontextmanager
    async def turn(self, user_id: int) -> AsyncIterator[None]:
        async with super().turn(0):
            yield


async def _caption(client: httpx.AsyncClient, key: str, concept: int, tokens: int) -> float:
    started = time.perf_counter()
    resp = await client.post(
        "/caption",
        headers={"Authorization": f"Bearer {key}"},
        data={"concept_ids": str(concept), "max_tokens": str(tokens)},
        files={"image": ("q.jpg", images.pattern(9), "image/jpeg")},
    )
    resp.raise_for_status()
    return time.perf_counter() - started


async def measure(
    root: Path, fair: bool, burst: int, long_tokens: int, rounds: int
) -> dict[str, float]:
    clip = build_tiny_clip(root / "clip")
    settings = Settings.model_validate(
        {
            "env": "test",
            "database_url": f"sqlite:///{root / f'bench-{fair}.db'}",
            "data_dir": root / f"data-{fair}",
            "admin_token": ADMIN,
            "log_format": "inherit",
            "preload_models": False,
            "embedder": {"model": str(clip.config_path), "pretrained": str(clip.checkpoint_path)},
            "vlm": {"backend": "transformers", "model": str(build_tiny_qwen25vl(root / "qwen"))},
            "quota": {"concurrent_captions": burst},
        }
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if not fair:
            app.state.runtime.vlm_gate = FirstComeFirstServed(1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=600) as c:
            keys, concepts = {}, {}
            for name in ("alice", "bob"):
                made = await c.post(
                    "/admin/users",
                    json={"name": name},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                keys[name] = made.json()["key"]
                concept = await c.post(
                    "/concepts",
                    headers={"Authorization": f"Bearer {keys[name]}"},
                    data={"name": "bo"},
                    files=[("images", ("a.jpg", images.pattern(1), "image/jpeg"))],
                )
                concepts[name] = concept.json()["id"]
            alone = await _caption(c, keys["bob"], concepts["bob"], 8)  # also warms the model
            alone = await _caption(c, keys["bob"], concepts["bob"], 8)
            long_alone = await _caption(c, keys["alice"], concepts["alice"], long_tokens)
            waits = []
            for _ in range(rounds):
                tasks = [
                    asyncio.create_task(_caption(c, keys["alice"], concepts["alice"], long_tokens))
                    for _ in range(burst)
                ]
                await asyncio.sleep(0.05)  # the burst is queued first
                waits.append(await _caption(c, keys["bob"], concepts["bob"], 8))
                await asyncio.gather(*tasks)
    return {"alone": alone, "long": long_alone, "during": statistics.median(waits)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=4)
    parser.add_argument("--long-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fair in (False, True):
            m = asyncio.run(measure(Path(tmp), fair, args.burst, args.long_tokens, args.rounds))
            rows.append(
                f"| {'fair (per-user turns)' if fair else 'first come, first served'} | "
                f"{m['alone'] * 1000:.0f} | {m['long'] * 1000:.0f} | {m['during'] * 1000:.0f} |"
            )
    body = "\n".join(
        [
            "## Fairness (one user's burst vs another's single caption)",
            "",
            f"Alice queues {args.burst} captions of {args.long_tokens} new tokens; 50 ms later Bob "
            "asks for one 8-token caption. Bob's latency, median of "
            f"{args.rounds} rounds (in-process tiny Qwen2.5-VL, one generation at a time, "
            f"{cpu_model()}):",
            "",
            "| model turns | Bob alone (ms) | one long caption (ms) | Bob during the burst (ms) |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "Reproduce: `.venv/bin/python -m bench.fairness`. With fair turns Bob waits for at "
            "most the caption already running, whatever the size of Alice's burst; Alice's "
            "further captions are refused (429) beyond `REPIC_QUOTA__CONCURRENT_CAPTIONS`.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(Path(__file__).parents[1] / "BENCHMARKS.md", "fairness", body)


if __name__ == "__main__":
    main()
