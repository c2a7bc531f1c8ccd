"""Corrections that teach retrieval: recall@k before and after a user fixes the first misses.

A generated concept set (one reference photo per concept) is registered through the API; each
concept also has a second, unseen photo. Queries are near-duplicates of those unseen photos (a
2-pixel crop, re-encoded at another JPEG quality), as a phone's second shot of the same scene
would be. The simulated user captions each query with ``keep=true`` and, for the first
``--fix`` queries whose top hit is wrong, teaches the true concept from the kept caption
(``POST /captions/{id}/teach``). Recall@1 and recall@k are measured on fresh near-duplicates.

With the demo's random-weight CLIP, embeddings carry no meaning: only identical and
near-identical photos land close together, so "after" measures that a taught photo is found
again, not that the concept generalises to new views. Give ``--clip-model``/``--clip-pretrained``
(an open_clip architecture and its checkpoint file) on a host that has real weights.

Run from the repository root: ``python -m bench.feedback`` (about a minute on two cores; it
updates the feedback section of BENCHMARKS.md unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import tempfile
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from bench.markdown import cpu_model, write_section

ADMIN = "bench-admin-token-0123456789abcdef"


def scene(seed: int, size: tuple[int, int] = (224, 168)) -> bytes:
    """A generated photo: random coloured shapes on a random background."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(10, 90), rng.randrange(10, 70)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=92)
    return out.getvalue()


def near_duplicate(photo: bytes, seed: int) -> bytes:
    """The photo with a small border cut off and re-encoded at another quality."""
    rng = random.Random(seed)
    with Image.open(io.BytesIO(photo)) as img:
        cut = rng.randint(1, 4)
        out = io.BytesIO()
        img.crop((cut, cut, img.width - cut, img.height - cut)).save(
            out, format="JPEG", quality=rng.choice((75, 80, 85))
        )
    return out.getvalue()


async def recall(
    client: httpx.AsyncClient, queries: list[tuple[int, bytes]], k: int
) -> tuple[float, float, list[int]]:
    """Recall@1 and recall@k over ``queries`` (true concept id, photo); the missed indices."""
    hits1 = hitsk = 0
    missed = []
    for i, (truth, photo) in enumerate(queries):
        resp = await client.post(
            "/retrieve",
            files={"image": ("q.jpg", photo, "image/jpeg")},
            data={"top_k": str(k), "min_score": "-1"},
        )
        resp.raise_for_status()
        ranked = [hit["concept"]["id"] for hit in resp.json()["data"]]
        hits1 += bool(ranked[:1] == [truth])
        hitsk += truth in ranked
        if ranked[:1] != [truth]:
            missed.append(i)
    return hits1 / len(queries), hitsk / len(queries), missed


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from app.core.migrate import upgrade
    from app.core.settings import Settings
    from app.main import create_app
    from model.tiny.clip import build_tiny_clip
    from model.tiny.qwen import build_tiny_qwen25vl

    if args.clip_model:
        clip_model, clip_weights = args.clip_model, args.clip_pretrained
    else:
        tiny = build_tiny_clip(root / "clip")
        clip_model, clip_weights = str(tiny.config_path), str(tiny.checkpoint_path)
    qwen = build_tiny_qwen25vl(root / "qwen")
    settings = Settings.model_validate(
        {
            "env": "test",
            "database_url": f"sqlite:///{root / 'repic.db'}",
            "data_dir": root / "data",
            "admin_token": ADMIN,
            "log_format": "inherit",
            "preload_models": False,
            "embedder": {"model": clip_model, "pretrained": clip_weights},
            "vlm": {"backend": "transformers", "model": str(qwen), "max_tokens": 1},
            "quota": {"requests_per_minute": 100_000, "request_burst": 100_000},
        }
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as admin:
            made = await admin.post(
                "/admin/users", json={"name": "u"}, headers={"Authorization": f"Bearer {ADMIN}"}
            )
            key = made.json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers, timeout=120
        ) as client:
            return await simulate(client, args)


async def simulate(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, Any]:
    ids = []
    for c in range(args.concepts):
        resp = await client.post(
            "/concepts",
            data={"name": f"c{c}", "info": "generated"},
            files=[("images", ("a.jpg", scene(2 * c), "image/jpeg"))],
        )
        resp.raise_for_status()
        ids.append(resp.json()["id"])
    unseen = [(ids[c], scene(2 * c + 1)) for c in range(args.concepts)]
    first = [(t, near_duplicate(p, 10 + i)) for i, (t, p) in enumerate(unseen)]
    fresh = [(t, near_duplicate(p, 9000 + i)) for i, (t, p) in enumerate(unseen)]
    before1, beforek, missed = await recall(client, fresh, args.k)
    _, _, first_missed = await recall(client, first, args.k)
    taught = 0
    for i in first_missed[: args.fix]:
        truth, photo = first[i]
        captioned = await client.post(
            "/caption",
            files={"image": ("q.jpg", photo, "image/jpeg")},
            data={"keep": "true", "max_tokens": "1", "min_score": "-1"},
        )
        captioned.raise_for_status()
        record = captioned.json()["history_id"]
        (
            await client.post(f"/captions/{record}/teach", json={"concept_id": truth})
        ).raise_for_status()
        taught += 1
    after1, afterk, _ = await recall(client, fresh, args.k)
    return {
        "concepts": args.concepts,
        "k": args.k,
        "taught": taught,
        "misses_before": len(missed),
        "before": (before1, beforek),
        "after": (after1, afterk),
    }


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    k = result["k"]
    clip = "random-weight tiny CLIP (demo)" if not args.clip_model else args.clip_model
    lines = [
        "## Feedback: retrieval before and after corrections (`bench/feedback.py`)",
        "",
        f"`python -m bench.feedback --concepts {args.concepts} --fix {args.fix} --k {k}` on "
        f"{cpu_model()}; {clip}. {result['concepts']} generated concepts, one reference photo "
        "each; queries are near-duplicates of an unseen second photo per concept; the "
        f"simulated user taught the true concept from the kept caption of the first "
        f"{result['taught']} misses.",
        "",
        f"| | recall@1 | recall@{k} |",
        "|---|---|---|",
        f"| before teaching | {result['before'][0]:.2f} | {result['before'][1]:.2f} |",
        f"| after {result['taught']} corrections | {result['after'][0]:.2f} | "
        f"{result['after'][1]:.2f} |",
        "",
        "With random-weight CLIP only identical and near-identical photos are meaningful: the "
        "gain shows that a taught photo is found again at once, not that the concept "
        "generalises to new views; run with `--clip-model ViT-L-14-336 --clip-pretrained "
        "<checkpoint>` on a host with real weights for that.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", type=int, default=20)
    parser.add_argument("--fix", type=int, default=10, help="Misses the user corrects.")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--clip-model", default=None, help="open_clip architecture (real).")
    parser.add_argument("--clip-pretrained", default=None, help="Its checkpoint file.")
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()
    if bool(args.clip_model) != bool(args.clip_pretrained):
        parser.error("--clip-model and --clip-pretrained go together")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    text = table(result, args)
    print(text)
    if not args.no_write:
        write_section(Path("BENCHMARKS.md"), "feedback", text)


if __name__ == "__main__":
    main()
