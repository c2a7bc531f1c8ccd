"""Real-size photos through the service: the overhead of `POST /caption` (total - vlm) for
0.3, 3 and 12 MP queries against two concepts with 12 MP reference photos, next to the one-decode
floor of the same photo, and the cost of `POST /concepts` per 3 MP photo next to its floor
(decode once + embed + write). Every ratio is taken from numbers measured in the same run.

Run from the repository root: ``python -m bench.photos`` (a few minutes on two cores; it updates
the photos section of BENCHMARKS.md). ``--quick`` makes fewer requests and writes nothing. The
app runs in-process on the tiny random-weight models (the VLM's time is subtracted).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from app.core.migrate import upgrade
from app.core.settings import Settings
from app.main import create_app
from bench.floor import floor_steps
from bench.markdown import cpu_model, write_section
from model.images import normalize_image
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from tests.helpers.images import photo

SIZES = {"0.3 MP": (640, 480), "3 MP": (2000, 1500), "12 MP": (4032, 3024)}
ADMIN = "bench-admin-token-0123456789abcdef"


def p50_min(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return float(np.min(out)), float(np.median(out))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


async def measure(tmp: Path, reps: int, query_reps: int) -> tuple[str, str]:
    clip = build_tiny_clip(tmp / "clip")
    qwen = build_tiny_qwen25vl(tmp / "qwen")
    settings = Settings.model_validate(
        {
            "env": "test",
            "database_url": f"sqlite:///{tmp / 'repic.db'}",
            "data_dir": tmp / "data",
            "admin_token": ADMIN,
            "log_format": "inherit",
            "log_level": "WARNING",
            "preload_models": False,
            "embedder": {"model": str(clip.config_path), "pretrained": str(clip.checkpoint_path)},
            "vlm": {"backend": "transformers", "model": str(qwen), "max_tokens": 1},
            "retrieval": {"min_score": -1},
        }
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=600) as c:
            resp = await c.post(
                "/admin/users", json={"name": "bench"}, headers={"Authorization": f"Bearer {ADMIN}"}
            )
            c.headers["Authorization"] = f"Bearer {resp.json()['key']}"
            runtime = app.state.runtime
            ingest = await _ingest(c, runtime, reps)
            for seed, name in ((1, "bo"), (2, "thao")):
                files = {"images": ("r.jpg", photo(seed, SIZES["12 MP"]), "image/jpeg")}
                (await c.post("/concepts", data={"name": name}, files=files)).raise_for_status()
            queries = await _queries(c, runtime, query_reps)
    return queries, ingest


async def _queries(c: httpx.AsyncClient, runtime: object, reps: int) -> str:
    settings = runtime.settings  # type: ignore[attr-defined]
    embedder = runtime.embedder  # type: ignore[attr-defined]
    rows = []
    for label, size in SIZES.items():
        data = photo(30, size)
        steps = floor_steps(
            data,
            embedder,
            max_pixels=settings.upload.max_pixels,
            vlm_max_pixels=settings.vlm.max_pixels,
            grids=tuple(settings.regions.grids),
            center=settings.regions.center,
        )
        full_min, full_p50 = p50_min(
            functools.partial(normalize_image, data, max_pixels=settings.upload.max_pixels), reps
        )
        floors, clip_floors, overheads, decodes, embeds = [], [], [], [], []
        # Round-robin: each round times both floors and one request, so that load from other
        # processes falls on all alike; the first round warms up.
        for _ in range(reps + 1):
            floors.append(_timed(steps.floor))
            clip_floors.append(_timed(steps.floor_with_clip))
            files = {"image": ("q.jpg", data, "image/jpeg")}
            resp = await c.post("/caption", data={"top_k": "2"}, files=files)
            resp.raise_for_status()
            t = resp.json()["timings_ms"]
            overheads.append(t["total"] - t["vlm"])
            decodes.append(t["decode"])
            embeds.append(t["embed"])
        f, fc, o = np.asarray(floors[1:]), np.asarray(clip_floors[1:]), np.asarray(overheads[1:])
        q1, med, q3 = np.percentile(o / f, [25, 50, 75])
        cq1, cmed, cq3 = np.percentile(o / fc, [25, 50, 75])
        rows.append(
            [
                label,
                f"{f.min():.1f} / {np.median(f):.1f}",
                f"{fc.min():.1f} / {np.median(fc):.1f}",
                f"{np.min(decodes[1:]):.1f} / {np.median(decodes[1:]):.1f}",
                f"{np.min(embeds[1:]):.1f} / {np.median(embeds[1:]):.1f}",
                f"{o.min():.1f} / {np.median(o):.1f}",
                f"**{med:.2f}x** ({q1:.2f}-{q3:.2f})",
                f"{cmed:.2f}x ({cq1:.2f}-{cq3:.2f})",
                f"{full_min:.0f} / {full_p50:.0f}",
            ]
        )
    headers = [
        "query",
        "floor ms (min / p50)",
        "floor with CLIP ms (min / p50)",
        "service decode stage ms",
        "service embed stage ms",
        "caption total - vlm ms",
        "overhead / floor: median of rounds (quartiles)",
        "overhead / floor with CLIP: median of rounds (quartiles)",
        "full-size decode + re-encode ms (the old query path's first step)",
    ]
    return table(headers, rows)


async def _ingest(c: httpx.AsyncClient, runtime: object, reps: int) -> str:
    settings = runtime.settings  # type: ignore[attr-defined]
    embedder = runtime.embedder  # type: ignore[attr-defined]
    blobs = runtime.blobs  # type: ignore[attr-defined]
    photos = [photo(100 + i, SIZES["3 MP"]) for i in range(reps + 1)]
    embedder.embed([normalize_image(photos[0], max_pixels=10**8, max_side=256).to_pil()])
    floors, strict = [], []
    for data in photos[1:]:
        for shrink, out in ((False, floors), (True, strict)):
            start = time.perf_counter()
            img = normalize_image(
                data,
                max_pixels=settings.upload.max_pixels,
                max_side=settings.upload.store_max_side,
                keep_pixels=True,
            )
            pixels = [img.to_pil()]
            embedder.embed(embedder.shrink_to_input(pixels) if shrink else pixels)
            blobs.put(img.data)
            out.append((time.perf_counter() - start) * 1e3)
    posts = []
    for i, data in enumerate(photos):
        files = {"images": ("p.jpg", data, "image/jpeg")}
        start = time.perf_counter()
        resp = await c.post("/concepts", data={"name": f"ingest{i}"}, files=files)
        posts.append((time.perf_counter() - start) * 1e3)
        resp.raise_for_status()
    posts = posts[1:]
    floor, post = float(np.median(floors)), float(np.median(posts))
    headers = [
        "3 MP photo",
        "floor: decode once + embed + write, ms (min / p50)",
        "floor with the embed input reduced first, ms (min / p50)",
        "`POST /concepts` ms (min / p50)",
        "POST / floor (p50)",
        "POST / floor with the reduced embed input (p50)",
    ]
    row = [
        f"{reps} photos",
        f"{np.min(floors):.0f} / {floor:.0f}",
        f"{np.min(strict):.0f} / {np.median(strict):.0f}",
        f"{np.min(posts):.0f} / {post:.0f}",
        f"**{post / floor:.2f}x**",
        f"{post / float(np.median(strict)):.2f}x",
    ]
    return table(headers, [row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        queries, ingest = asyncio.run(
            measure(Path(tmp), 3 if args.quick else 9, 3 if args.quick else 20)
        )
    load_after = os.getloadavg()[0]
    body = "\n\n".join(
        [
            "## Real-size photos (one decode per photo, derivatives at upload)",
            f"Command: `python -m bench.photos`. Measured {datetime.now(UTC):%Y-%m-%d} on "
            f"{cpu_model()}, {os.cpu_count()} cores shared with other work (load average "
            f"{load_before:.1f} before, {load_after:.1f} after): absolute numbers are noisy, the "
            "ratios compare numbers taken minutes apart in the same run.",
            "`POST /caption` in-process (tiny random-weight models, `top_k=2`, two concepts "
            "with 12 MP reference photos, one request at a time). The floor (`bench/floor.py`) "
            "is what a caption needs from the photo at least: one decode (draft mode, EXIF "
            "transpose), one resize, one JPEG encode for the VLM, the crops cut from the small "
            "image. The floor with CLIP adds what the service does for CLIP besides: the working "
            "image reduced to what the crops need, their CLIP preprocessing and forward (one "
            "thread). Both leave out HTTP, authentication, SQL, search, prompt and hand-offs. "
            "The two floors and a request alternate, one each per round; a ratio is the median "
            "of the per-round ratios (quartiles in brackets). The target (overhead at most 1.3x "
            "the floor) is against the floor without CLIP.",
            queries,
            "Ingest, one 3 MP photo per `POST /concepts` (its demonstration image and thumbnail "
            "included) against decode once + embed + blob write of the same photos. The first "
            "floor embeds with open_clip's own preprocessing (`ClipEmbedder.embed`), the second "
            "reduces the photo to the CLIP input first as the service does "
            "(`ClipEmbedder.shrink_to_input`; the service embeds the demonstration image, which "
            "the upload makes anyway):",
            ingest,
        ]
    )
    print(body)
    if not args.quick:
        write_section(args.output, "photos", body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
