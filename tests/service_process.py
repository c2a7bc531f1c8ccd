"""The API (uvicorn) and `repic worker` as subprocesses, as deployments run them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """The service's environment: SQLite and data under ``root``, then ``extra``."""
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


def create_user(env: dict[str, str], name: str) -> str:
    """Migrate the database and create ``name``; its API key."""
    subprocess.run([BIN / "repic", "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [BIN / "repic", "users", "create", name], env=env, check=True, capture_output=True
    )
    return created.stdout.decode().strip().splitlines()[-1]


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_api(env: dict[str, str], log: Path) -> Proc:
    port = free_port()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [BIN / "uvicorn", "--factory", "app.main:create_app", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(process, log, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{proc.url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"uvicorn did not come up: {log.read_text()[-3000:]}")


def start_worker(env: dict[str, str], log: Path) -> Proc:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [BIN / "repic", "worker"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    return Proc(process, log)
