"""Caption benchmark: `POST /caption` through the service against the same chat completion sent
to the vLLM server directly, at concurrency 1, 8 and 32, and where the difference goes.

Run from the repository root: ``python -m bench.caption`` (about three minutes on two cores; it
needs ``.venv-vllm`` from ``make vllm-env`` and updates the caption section of BENCHMARKS.md).
``--quick`` sends a few requests per level and writes nothing. Every process it starts is
stopped when it ends, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench import spy
from bench.caption_report import Level, Measurement, Run, section
from bench.markdown import write_section
from bench.servers import ApiServer, group_cpu_s, pin_group, start_api
from bench.stages import measure_stage_costs
from model.images import normalize_image
from model.prompt import Demo, build_repic_messages
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from model.vlm.openai_backend import DEFAULT_REPETITION_PENALTY, to_openai_messages
from tests.helpers.vllm import VLLMServer, start_vllm_server

#: Requests per concurrency level and path; the level at 8 runs once more with pinned cores.
LEVELS = {1: 30, 8: 80, 32: 160}
QUICK_LEVELS = {1: 4, 8: 16, 32: 32}
TOP_K = 2
MAX_TOKENS = 8
IMAGE_SIZE = (320, 240)  # under the server's 128-token pixel budget: nobody downscales
UPLOAD_MAX_PIXELS = 40_000_000  # the service's default cap, for normalising like it does
STORE_MAX_SIDE = 2048


def picture(seed: int) -> bytes:
    """A deterministic 320x240 JPEG of coloured blocks, different per seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (IMAGE_SIZE[1] // 16, IMAGE_SIZE[0] // 16, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


Send = Callable[[], Awaitable[dict[str, float] | None]]


async def drive(send: Send, requests: int, concurrency: int) -> Run:
    """``requests`` calls of ``send`` with ``concurrency`` of them in flight at any time."""
    run = Run()
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            timings = await send()
            run.latencies_ms.append((time.perf_counter() - start) * 1e3)
            if timings is not None:
                run.timings.append(timings)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.wall_s = time.perf_counter() - start
    return run


class Workload:
    """The caption request through the service, and the identical completion sent directly."""

    def __init__(self, api: ApiServer, vllm: VLLMServer, client: httpx.AsyncClient) -> None:
        self.api, self.vllm, self.client = api, vllm, client
        self.query = picture(0)
        self.direct_body = b""
        self.api_caption = ""

    async def setup(self) -> None:
        """Two concepts, one warm-up caption, and the direct body built from what it used."""
        references = {"bo": picture(1), "thao": picture(2)}
        for name, blob in references.items():
            resp = await self.client.post(
                f"{self.api.url}/concepts",
                headers=self._auth(),
                data={"name": name, "info": f"the benchmark's {name}"},
                files={"images": (f"{name}.jpg", blob, "image/jpeg")},
            )
            resp.raise_for_status()
        resp = await self._caption()
        body = resp.json()
        self.api_caption = body["caption"]
        demos = [
            Demo(
                name=used["name"],
                info=f"the benchmark's {used['name']}",
                image=normalize_image(
                    references[used["name"]],
                    max_pixels=UPLOAD_MAX_PIXELS,
                    max_side=STORE_MAX_SIDE,
                ),
            )
            for used in body["concepts_used"]
        ]
        query = normalize_image(self.query, max_pixels=UPLOAD_MAX_PIXELS)
        prompt = build_repic_messages(
            demos, query, max_pixels=self.vllm.max_pixels, demo_max_pixels=self.vllm.max_pixels
        )
        self.direct_body = json.dumps(
            {
                "model": self.vllm.model_name,
                "messages": to_openai_messages(prompt),
                "max_completion_tokens": MAX_TOKENS,
                "temperature": 0.0,
                "repetition_penalty": DEFAULT_REPETITION_PENALTY,
                "cache_salt": hashlib.sha256(b"bench-user").hexdigest(),
            }
        ).encode()
        direct = (await self._completion()).json()["choices"][0]["message"]["content"]
        if direct != self.api_caption:
            raise RuntimeError(
                "The direct request is not the one the service sends: greedy captions differ "
                f"({self.api_caption!r} through the service, {direct!r} direct)."
            )

    async def via_api(self) -> dict[str, float]:
        body = (await self._caption()).json()
        if len(body["concepts_used"]) != TOP_K:
            raise RuntimeError(f"expected {TOP_K} concepts in the prompt, got {body}")
        timings: dict[str, float] = body["timings_ms"]
        return timings

    async def direct(self) -> None:
        await self._completion()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api.key}"}

    async def _caption(self) -> httpx.Response:
        resp = await self.client.post(
            f"{self.api.url}/caption",
            headers=self._auth(),
            data={"top_k": str(TOP_K), "max_tokens": str(MAX_TOKENS)},
            files={"image": ("query.jpg", self.query, "image/jpeg")},
        )
        if resp.status_code != 200:
            raise RuntimeError(f"POST /caption answered {resp.status_code}: {resp.text}")
        return resp

    async def _completion(self) -> httpx.Response:
        resp = await self.client.post(
            f"{self.vllm.base_url}/chat/completions",
            content=self.direct_body,
            headers={
                "Authorization": f"Bearer {self.vllm.api_key}",
                "Content-Type": "application/json",
            },
        )
        if resp.status_code != 200:
            raise RuntimeError(f"vLLM answered {resp.status_code}: {resp.text}")
        return resp


def cpu_snapshot(api: ApiServer, vllm: VLLMServer) -> dict[str, float]:
    return {
        "service": group_cpu_s(api.process.pid),
        "vllm": group_cpu_s(vllm.process.pid),
        "client": time.process_time(),
    }


async def drive_counted(
    send: Send, requests: int, concurrency: int, api: ApiServer, vllm: VLLMServer
) -> Run:
    """:func:`drive`, plus the CPU time each process group spent per request meanwhile."""
    before = cpu_snapshot(api, vllm)
    run = await drive(send, requests, concurrency)
    after = cpu_snapshot(api, vllm)
    run.cpu_ms = {name: (after[name] - before[name]) * 1e3 / requests for name in after}
    return run


async def idle_cores(api: ApiServer, vllm: VLLMServer, seconds: float = 3.0) -> dict[str, float]:
    before = cpu_snapshot(api, vllm)
    await asyncio.sleep(seconds)
    after = cpu_snapshot(api, vllm)
    return {name: (after[name] - before[name]) / seconds for name in ("service", "vllm")}


async def level(work: Workload, label: str, concurrency: int, requests: int) -> Level:
    """Both paths at one concurrency, each after a warm-up round of its own."""
    api, vllm = work.api, work.vllm
    await drive(work.direct, concurrency, concurrency)
    direct = await drive_counted(work.direct, requests, concurrency, api, vllm)
    await drive(work.via_api, concurrency, concurrency)
    service = await drive_counted(work.via_api, requests, concurrency, api, vllm)
    print(f"concurrency {label}: done ({requests} requests per path)", flush=True)
    return Level(label, concurrency, direct, service)


async def measure(
    api: ApiServer, vllm: VLLMServer, levels: dict[int, int], profile_dir: Path | None
) -> tuple[list[Level], dict[str, float], dict[str, float]]:
    """Every level, the idle CPU use of both servers, and the service's CPU profile at 8."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        work = Workload(api, vllm, client)
        await work.setup()
        idle = await idle_cores(api, vllm)
        results = [
            await level(work, str(concurrency), concurrency, requests)
            for concurrency, requests in levels.items()
        ]
        profile = {}
        if profile_dir is not None:
            # A run of its own: the sampler's CPU use must not slow the measured levels.
            sampler = spy.Sampler(api.process.pid, profile_dir / "service.spy")
            try:
                await drive(work.via_api, levels[8], 8)
            finally:
                profile = sampler.stop()
        # The production layout in miniature: the service and vLLM on cores of their own.
        cores = sorted(os.sched_getaffinity(0))
        pin_group(api.process.pid, {cores[0]})
        pin_group(vllm.process.pid, set(cores[1:]))
        results.append(await level(work, "8, pinned", 8, levels[8]))
    return results, idle, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few requests, no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("The benchmark needs two cores: one level pins the service and vLLM.")
    if not spy.available():
        print("py-spy is not on PATH: no CPU profile of the service (pip install py-spy)")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        clip = build_tiny_clip(root / "clip")
        qwen = build_tiny_qwen25vl(root / "qwen")
        costs = measure_stage_costs(clip, picture(0), picture(1), picture(2))
        print("starting vLLM (about a minute) ...", flush=True)
        vllm = start_vllm_server(qwen, root / "vllm")
        stack.callback(vllm.stop)
        api = start_api(root / "api", clip, vllm, "bench")
        stack.callback(api.stop)
        levels = QUICK_LEVELS if args.quick else LEVELS
        profile_dir = root if spy.available() else None
        results, idle, profile = asyncio.run(measure(api, vllm, levels, profile_dir))
    measurement = Measurement(results, idle, costs, profile, (load_before, os.getloadavg()[0]))
    body = section(measurement)
    print(body)
    if not args.quick:
        write_section(args.output, "caption", body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
