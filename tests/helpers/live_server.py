"""The service as deployed, for the fuzzing and fault tests (and `make fuzz`), which need a real
server: real sockets, real keep-alive, real process restarts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.server import BIN, create_users, running_server

__all__ = ["BIN", "LiveServer", "live_server", "prepare", "server_env"]

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
    return create_users(env, user)[user]


@contextmanager
def live_server(env: dict[str, str], key: str, log: Path) -> Iterator[LiveServer]:
    """uvicorn on a free loopback port until the block ends (SIGTERM, then SIGKILL)."""
    with running_server(env, log, uvicorn_args=["--no-access-log"]) as server:
        yield LiveServer(
            url=server.url,
            key=key,
            admin_token=env["REPIC_ADMIN_TOKEN"],
            log=log,
            env=env,
            process=server.process,
        )
