"""Helpers of the caption-job tests: submit an album, wait for it, parse an event stream."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.helpers import images
from tests.helpers.server import BIN, Process, start_process


def service_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """The service's environment for job tests: SQLite and data under ``root``, then ``extra``."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "REPIC_DATABASE_URL": f"sqlite:///{root / 'repic.db'}",
        "REPIC_DATA_DIR": str(root / "data"),
        "REPIC_RETRIEVAL__MIN_SCORE": "-1",
        "REPIC_LOG_FORMAT": "text",
        "REPIC_PRELOAD_MODELS": "false",
        # The tests poll progress faster than a person would.
        "REPIC_QUOTA__REQUESTS_PER_MINUTE": "100000",
        "REPIC_QUOTA__REQUEST_BURST": "10000",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> Process:
    """`repic worker` in a subprocess."""
    return start_process([BIN / "repic", "worker"], env, log)


def album(count: int, *, seed: int = 100) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``count`` distinct photos as multipart ``images`` parts."""
    return [
        ("images", (f"p{i:03d}.jpg", images.pattern(seed + i), "image/jpeg")) for i in range(count)
    ]


async def wait_done(
    client: httpx.AsyncClient, job_id: str, timeout_s: float = 240.0
) -> dict[str, Any]:
    """Poll the job until it is done (or fail with its last state)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        resp = await client.get(f"/caption-jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if body["status"] == "done":
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} not done within {timeout_s} s: {body}")


async def all_results(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """Every result of the job, paging by 7 to exercise offsets."""
    rows: list[dict[str, Any]] = []
    while True:
        resp = await client.get(
            f"/caption-jobs/{job_id}/results", params={"offset": len(rows), "limit": 7}
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        rows.extend(page["data"])
        if len(rows) >= page["count"]:
            return rows


def parse_events(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs of a Server-Sent Events body."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def procrastinate_tasks(db_url: str) -> list[dict[str, Any]]:
    """The rows of procrastinate's job table: what the queue did with each caption job."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT task_name, queue_name, args, status, attempts FROM procrastinate_jobs "
                    "ORDER BY id"
                )
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


async def wait_task_succeeded(db_url: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """procrastinate's rows once every task has succeeded (the worker records that just after
    the job's last photo)."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = procrastinate_tasks(db_url)
        if tasks and all(t["status"] == "succeeded" for t in tasks):
            return tasks
        assert time.monotonic() < deadline, tasks
        await asyncio.sleep(0.1)
