"""Album benchmark: captions per second for a 100-photo caption job against the same photos
sent one by one to `POST /caption` at concurrency 1 and 8, through the service in front of a
real vLLM server (CPU build, tiny random-weight Qwen2.5-VL).

Run from the repository root: ``python -m bench.album`` (a few minutes on two cores; it needs
``.venv-vllm`` from ``make vllm-env`` and updates the album section of BENCHMARKS.md).
``--quick`` uses 16 photos and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.caption import picture
from bench.markdown import cpu_model, write_section
from bench.servers import ApiServer, start_api
from model.tiny.clip import build_tiny_clip
from model.tiny.qwen import build_tiny_qwen25vl
from tests.helpers.vllm import start_vllm_server

PHOTOS = 100
QUICK_PHOTOS = 16
MAX_TOKENS = 8
JOB_CONCURRENCY = 8


async def one_by_one(api: ApiServer, photos: list[bytes], concurrency: int) -> float:
    """Seconds to caption every photo with ``concurrency`` clients calling `POST /caption`."""
    queue = list(enumerate(photos))
    headers = {"Authorization": f"Bearer {api.key}"}

    async def client_loop(client: httpx.AsyncClient) -> None:
        while queue:
            index, data = queue.pop()
            resp = await client.post(
                "/caption",
                files={"image": (f"{index}.jpg", data, "image/jpeg")},
                data={"max_tokens": str(MAX_TOKENS)},
            )
            resp.raise_for_status()

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=300) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return time.perf_counter() - start


async def as_job(api: ApiServer, photos: list[bytes]) -> float:
    """Seconds from submitting one job of every photo until it is done (upload included)."""
    headers = {"Authorization": f"Bearer {api.key}"}
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=300) as client:
        resp = await client.post("/caption-jobs", files=files, data={"max_tokens": str(MAX_TOKENS)})
        resp.raise_for_status()
        job_id = resp.json()["id"]
        while True:
            body = (await client.get(f"/caption-jobs/{job_id}")).json()
            if body["status"] == "done":
                break
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    if body["progress"]["done"] != len(photos):
        raise RuntimeError(f"the job did not caption every photo: {body}")
    return elapsed


async def measure(api: ApiServer, photos: list[bytes]) -> list[tuple[str, float]]:
    await one_by_one(api, photos[:4], 4)  # warm-up: models loaded, connections open
    return [
        ("one by one, concurrency 1", await one_by_one(api, photos, 1)),
        ("one by one, concurrency 8", await one_by_one(api, photos, 8)),
        (f"one job (REPIC_JOBS__CONCURRENCY={JOB_CONCURRENCY})", await as_job(api, photos)),
    ]


def section(rows: list[tuple[str, float]], photos: int) -> str:
    lines = [
        "## Albums: one caption job against photos sent one by one",
        "",
        f"{photos} distinct photos (320x240), retrieval over one concept, `max_tokens` "
        f"{MAX_TOKENS}, tiny random Qwen2.5-VL on vLLM-CPU, service and vLLM on the same "
        f"{os.cpu_count()} cores ({cpu_model()}). The job time runs from the upload to `done`.",
        "",
        "| how | seconds | captions/s |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {label} | {s:.1f} | {photos / s:.1f} |" for label, s in rows]
    lines += [
        "",
        "With the tiny model the VLM is cheap, so what separates the rows is the service's own "
        "cost per photo: a job pays one HTTP request and one multipart parse for the whole "
        "album and keeps captions in flight without a client round trip between them.",
        "",
        "Reproduce: `.venv/bin/python -m bench.album` (needs `.venv-vllm`).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 photos, no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["REPIC_JOBS__CONCURRENCY"] = str(JOB_CONCURRENCY)
    os.environ["REPIC_JOBS__POLL_S"] = "0.1"
    count = QUICK_PHOTOS if args.quick else PHOTOS
    photos = [picture(1000 + i) for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        clip = build_tiny_clip(root / "clip")
        qwen = build_tiny_qwen25vl(root / "qwen")
        print("starting vLLM (about a minute) ...", flush=True)
        vllm = start_vllm_server(qwen, root / "vllm")
        stack.callback(vllm.stop)
        api = start_api(root / "api", clip, vllm, "bench")
        stack.callback(api.stop)
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.key}"}) as c:
            c.post(
                "/concepts",
                data={"name": "bo"},
                files={"images": ("bo.jpg", picture(1), "image/jpeg")},
            ).raise_for_status()
        rows = asyncio.run(measure(api, photos))
    body = section(rows, count)
    print(body)
    if not args.quick:
        write_section(args.output, "album", body)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
