"""The processes a benchmark talks to: the service under uvicorn, configured like a deployment
with the openai backend, in front of a vLLM server started by :mod:`tests.helpers.vllm`.

Both are started by the launchers the tests use (:mod:`tests.helpers.server`), so a benchmark
runs the service exactly as the tests do."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from model.tiny.clip import TinyClip
from tests.helpers.server import Process, create_users, start_server
from tests.helpers.vllm import VLLMServer


@dataclass
class ApiServer:
    """The service under uvicorn (one worker) and the API key of its one user."""

    server: Process
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.server.process

    def stop(self) -> None:
        """SIGTERM (uvicorn drains), then SIGKILL if it is still there."""
        self.server.stop()


def group_pids(leader: int) -> list[int]:
    """The live processes of ``leader``'s process group."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may hold spaces; fields follow the last ')'.
        if int(text[text.rindex(")") + 2 :].split()[2]) == leader:
            pids.append(int(stat.parent.name))
    return pids


def group_cpu_s(leader: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of ``leader``'s group."""
    total = 0
    for pid in group_pids(leader):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = fields[fields.rindex(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def pin_group(leader: int, cpus: set[int]) -> None:
    """Restrict every thread of ``leader``'s group to ``cpus``; new threads inherit it."""
    for pid in group_pids(leader):
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, FileNotFoundError):
                continue  # the thread ended meanwhile


def api_env(root: Path, clip: TinyClip, vllm: VLLMServer) -> dict[str, str]:
    """A production-like environment: JSON logs, preloaded models, the openai backend."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        REPIC_DATABASE_URL=f"sqlite:///{root / 'repic.db'}",
        REPIC_DATA_DIR=str(root / "data"),
        REPIC_EMBEDDER__MODEL=str(clip.config_path),
        REPIC_EMBEDDER__PRETRAINED=str(clip.checkpoint_path),
        REPIC_VLM__BACKEND="openai",
        REPIC_VLM__BASE_URL=vllm.base_url,
        REPIC_VLM__API_KEY=vllm.api_key,
        REPIC_VLM__MODEL=vllm.model_name,
        # The service downscales to the budget the server was started with, as it should.
        REPIC_VLM__MAX_PIXELS=str(vllm.max_pixels),
        REPIC_VLM__DEMO_MAX_PIXELS=str(vllm.max_pixels),
        REPIC_RETRIEVAL__MIN_SCORE="-1",
        REPIC_LOG_FORMAT="json",
        # One benchmark user stands for many clients: per-user limits would measure 429s.
        REPIC_QUOTA__REQUESTS_PER_MINUTE="100000000",
        REPIC_QUOTA__REQUEST_BURST="1000000",
        REPIC_QUOTA__CONCURRENT_CAPTIONS="1024",
    )
    return env


def start_api(root: Path, clip: TinyClip, vllm: VLLMServer, user: str) -> ApiServer:
    """Migrate, create ``user``, start uvicorn and wait for ``GET /readyz`` (models loaded).

    In its own process group, so :func:`group_cpu_s` counts it alone. The caller stops it with
    ``stop()``.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = api_env(root, clip, vllm)
    key = create_users(env, user)[user]
    server = start_server(
        env,
        root / "api.log",
        ready_path="/readyz",
        uvicorn_args=["--workers", "1"],
        new_session=True,
    )
    return ApiServer(server, key)
