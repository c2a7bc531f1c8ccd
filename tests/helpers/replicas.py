"""API replicas as operators run them: `repic db upgrade`, then uvicorn processes sharing one
database and one blob store, each with its own data directory for its index cache."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.core.migrate import upgrade
from app.services.users import UserService
from model.tiny.clip import TinyClip
from store.db import make_engine, make_session_factory
from tests.helpers.server import Process, free_port, start_uvicorn, wait_ready


@dataclass
class Replica:
    """One API replica on a fixed port, so it comes back at the same address after a kill."""

    url: str
    port: int
    log: Path
    env: dict[str, str]
    server: Process | None = field(default=None)

    def start(self) -> None:
        """Start uvicorn; :meth:`wait_healthy` waits for it (start several, then wait)."""
        self.server = start_uvicorn(self.env, self.log, port=self.port)

    def wait_healthy(self) -> None:
        assert self.server is not None
        try:
            wait_ready(self.server)
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a machine or container dies."""
        if self.server is not None:
            self.server.kill()


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
