"""The service as users run it: uvicorn in a subprocess with the offline demo models.

Covers what only a real server shows: the request id in the response and in the JSON log line,
every pipeline-stage histogram in /metrics, `repic eval run` over HTTP, and a graceful shutdown
that lets an in-flight caption finish."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.server import create_users, start_server, tiny_model_env
from tests.helpers.training import make_concept_database

pytestmark = pytest.mark.live


@dataclass
class Server:
    url: str
    key: str
    log: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e")
    env = tiny_model_env(
        root, tiny_clip, tiny_qwen_dir, {"REPIC_VLM__MAX_TOKENS": "16", "REPIC_LOG_FORMAT": "json"}
    )
    key = create_users(env, "alice")["alice"]
    log = root / "server.log"
    started = start_server(env, log, uvicorn_args=["--timeout-graceful-shutdown", "30"])
    yield Server(url=started.url, key=key, log=log, process=started.process)
    started.kill()


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


def log_lines(server: Server) -> list[dict[str, object]]:
    lines = []
    for raw in server.log.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_caption_metrics_and_request_id(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=auth(server), timeout=120) as client:
        created = client.post(
            "/concepts",
            data={"name": "bo", "info": "my corgi"},
            files={"images": ("bo.jpg", images.pattern(1), "image/jpeg")},
        )
        assert created.status_code == 201, created.text
        resp = client.post(
            "/caption",
            files={"image": ("q.jpg", images.pattern(1), "image/jpeg")},
            headers={"X-Request-ID": "e2e-caption-1"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-request-id"] == "e2e-caption-1"
        assert resp.json()["concepts_used"][0]["name"] == "bo"
        generated = client.get("/healthz").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        metrics = client.get("/metrics").text
    for stage in ("decode", "embed", "search", "prompt", "vlm"):
        found = re.search(rf'repic_stage_seconds_count{{stage="{stage}"}} (\S+)', metrics)
        assert found and float(found.group(1)) > 0, stage
    assert 'repic_http_requests_total{method="POST",route="/caption",status="200"} 1.0' in metrics
    time.sleep(0.2)
    access = [line for line in log_lines(server) if line.get("request_id") == "e2e-caption-1"]
    assert access, "no log line carries the request id"
    assert all(server.key not in json.dumps(line) for line in log_lines(server))


def test_eval_run_end_to_end(server: Server, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    database = make_concept_database(dataset, concepts=3, images_per_concept=1, size=(96, 72))
    concepts = json.loads(database.read_text())["concept_dict"]
    queries = [
        {"image": entry["image"], "concepts": [key]} for key, entry in list(concepts.items())[:2]
    ]
    (dataset / "queries.json").write_text(json.dumps(queries))
    out = tmp_path / "results.jsonl"
    args = ["eval", "run", str(dataset), "--server", server.url, "--key", server.key]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["mode"] for r in rows} == {"retrieval", "skip_retrieval"}
    again = CliRunner().invoke(cli, [*args, "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert len(out.read_text().splitlines()) == 4  # resumed: nothing captioned twice


def test_graceful_shutdown_lets_in_flight_caption_finish(server: Server) -> None:
    outcome: dict[str, object] = {}

    def long_caption() -> None:
        with httpx.Client(base_url=server.url, headers=auth(server), timeout=120) as client:
            resp = client.post(
                "/caption",
                files={"image": ("q.jpg", images.pattern(5), "image/jpeg")},
                data={"max_tokens": "400"},
            )
            outcome["status"] = resp.status_code
            outcome["finished"] = time.monotonic()

    worker = threading.Thread(target=long_caption)
    worker.start()
    time.sleep(1.0)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    worker.join(120)
    assert outcome.get("status") == 200
    assert float(outcome["finished"]) > signalled  # type: ignore[arg-type]
    # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is its normal exit.
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()
