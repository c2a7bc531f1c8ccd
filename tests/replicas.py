"""API replicas as operators run them: `repic db upgrade`, then uvicorn processes sharing one
database and one blob store, each with its own data directory for its index cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.migrate import upgrade
from app.services.users import UserService
from model.tiny.clip import TinyClip
from store.db import make_engine, make_session_factory
from tests.s3_fixtures import free_port

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 90.0


@dataclass
class Replica:
    url: str
    port: int
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    BIN / "uvicorn",
                    "--factory",
                    "app.main:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.kill()
        pytest.fail(f"uvicorn did not come up: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a machine or container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def service_env(
    database_url: str,
    data_dir: Path,
    tiny_clip: TinyClip,
    tiny_qwen_dir: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one replica (tiny random models, logs as text)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "REPIC_ENV": "development",
        "REPIC_DATABASE_URL": database_url,
        "REPIC_DATA_DIR": str(data_dir),
        "REPIC_EMBEDDER__MODEL": str(tiny_clip.config_path),
        "REPIC_EMBEDDER__PRETRAINED": str(tiny_clip.checkpoint_path),
        "REPIC_VLM__BACKEND": "transformers",
        "REPIC_VLM__MODEL": str(tiny_qwen_dir),
        "REPIC_VLM__MAX_TOKENS": "4",
        "REPIC_RETRIEVAL__MIN_SCORE": "-1",
        "REPIC_PRELOAD_MODELS": "false",
        "REPIC_LOG_FORMAT": "text",
        "REPIC_WORKERS": "2",
        **(extra or {}),
    }


def repic(env: dict[str, str], *args: str) -> str:
    """Run the `repic` command line; its standard output."""
    done = subprocess.run([BIN / "repic", *args], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"repic {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


def migrate(env: dict[str, str]) -> None:
    """`repic db upgrade`, in this process (each `repic` start costs seconds of imports)."""
    upgrade(env["REPIC_DATABASE_URL"])


def new_user(env: dict[str, str], name: str) -> str:
    """`repic users create`, in this process; the user's API key."""
    engine = make_engine(env["REPIC_DATABASE_URL"])
    try:
        return UserService(make_session_factory(engine)).create_user(name).plaintext
    finally:
        engine.dispose()


def replica(env: dict[str, str], log_dir: Path, name: str) -> Replica:
    port = free_port()
    return Replica(url=f"http://127.0.0.1:{port}", port=port, log=log_dir / f"{name}.log", env=env)
