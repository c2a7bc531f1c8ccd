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
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import torch
from tests.vllm_fixtures import MAX_PIXELS, VLLMServer, start_vllm_server

from bench.caption import drive
from bench.caption_report import Run
from bench.floor import photo_floor
from bench.markdown import cpu_model, write_section
from bench.servers import ApiServer, group_cpu_s, start_api
from model.embedder import ClipEmbedder
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from tests.test_photos import photo

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
    api: ApiServer, vllm: VLLMServer, levels: tuple[tuple[int, int], ...], floor_cpu: float
) -> str:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        c = Client(api, http)
        await c.setup()
        rows = []
        for n in range(PASSES):
            c1 = 0.0
            for concurrency, requests in levels:
                run, api_cpu, vllm_cpu = await _level(c, vllm, concurrency, requests)
                over = _overheads(run)
                p50 = float(np.median(over))
                c1 = p50 if concurrency == 1 else c1
                rows.append(
                    [
                        str(n + 1),
                        str(concurrency),
                        str(requests),
                        f"{api_cpu:.1f}",
                        f"{api_cpu / floor_cpu:.2f}x",
                        f"{vllm_cpu:.1f}",
                        f"{p50:.1f} / {np.percentile(over, 99):.1f}",
                        f"{p50 / c1:.2f}x",
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
        "vLLM CPU ms/req",
        "overhead = total - vlm, p50 / p99 ms",
        "p50 overhead / concurrency-1 p50 of the pass",
        "client latency p50 ms",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def floor_ms(clip_dir: Path, reps: int = 30) -> tuple[float, float, float]:
    """The one-decode floor of the query (`bench/floor.py`) with the service's embedder, one
    thread (as the service runs CLIP with the openai backend): min and p50 wall ms, and the
    median CPU ms (this process's CPU time per run)."""
    torch.set_num_threads(1)
    clip = build_tiny_clip(clip_dir)
    embedder = ClipEmbedder(str(clip.config_path), str(clip.checkpoint_path), "cpu")
    embedder.load()
    run = photo_floor(
        photo(30, QUERY_SIZE), embedder, max_pixels=UPLOAD_MAX_PIXELS, vlm_max_pixels=MAX_PIXELS
    )
    run()
    wall, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return float(np.min(wall)), float(np.median(wall)), float(np.median(cpu))


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
        floor = floor_ms(root / "clip-floor")  # before the servers start: nothing else of ours runs
        print("starting vLLM (about a minute) ...", flush=True)
        vllm = start_vllm_server(qwen, root / "vllm")
        stack.callback(vllm.stop)
        api = start_api(root / "api", clip, vllm, "bench")
        stack.callback(api.stop)
        levels = QUICK_LEVELS if args.quick else LEVELS
        table = asyncio.run(measure(api, vllm, levels, floor[2]))
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
            f"The query's one-decode floor (`bench/floor.py`: decode, resize, crops and their "
            f"CLIP forward, the VLM image's encode; one thread), in the benchmark's process "
            f"before the servers start: {floor[0]:.1f} ms min, {floor[1]:.1f} ms p50 wall, "
            f"{floor[2]:.1f} ms CPU (p50).",
        ]
    )
    print(body)
    if not args.quick:
        write_section(args.output, "service-cpu", body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
