"""The service as deployed: `repic db upgrade`, a user, then uvicorn in a subprocess on loopback.

Used by the fuzzing and fault tests (and `make fuzz`), which need a real server: real sockets,
real keep-alive, real process restarts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
ADMIN_TOKEN = "live-admin-token-0123456789abcdef"


@dataclass
class LiveServer:
    url: str
    key: str
    admin_token: str
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(root: Path, clip_config: Path, clip_weights: Path, qwen_dir: Path) -> dict[str, str]:
    """Environment of a server on tiny random-weight models with its data under ``root``."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "REPIC_ENV": "test",
        "REPIC_ADMIN_TOKEN": ADMIN_TOKEN,
        "REPIC_DATABASE_URL": f"sqlite:///{root / 'repic.db'}",
        "REPIC_DATA_DIR": str(root / "data"),
        "REPIC_EMBEDDER__MODEL": str(clip_config),
        "REPIC_EMBEDDER__PRETRAINED": str(clip_weights),
        "REPIC_VLM__BACKEND": "transformers",
        "REPIC_VLM__MODEL": str(qwen_dir),
        "REPIC_VLM__MAX_TOKENS": "4",
        "REPIC_RETRIEVAL__MIN_SCORE": "-1",
        "REPIC_LOG_FORMAT": "json",
        "REPIC_PRELOAD_MODELS": "true",
    }


def prepare(env: dict[str, str], user: str = "alice") -> str:
    """Migrate the database and create ``user``; return its API key."""
    subprocess.run([BIN / "repic", "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [BIN / "repic", "users", "create", user], env=env, check=True, capture_output=True
    )
    return created.stdout.decode().strip().splitlines()[-1]


@contextmanager
def live_server(env: dict[str, str], key: str, log: Path) -> Iterator[LiveServer]:
    """uvicorn on a free loopback port until the block ends (SIGTERM, then SIGKILL)."""
    port = free_port()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                BIN / "uvicorn",
                "--factory",
                "app.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-server-header",
                "--no-access-log",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        key=key,
        admin_token=env["REPIC_ADMIN_TOKEN"],
        log=log,
        env=env,
        process=process,
    )
    try:
        wait_until_up(server)
        yield server
    finally:
        stop(process)


def wait_until_up(server: LiveServer, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not come up: {server.log_tail()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
