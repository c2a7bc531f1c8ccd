"""The processes a benchmark talks to: the service under uvicorn, configured like a deployment
with the openai backend, in front of a vLLM server started by :mod:`tests.vllm_fixtures`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from model.tiny.clip import TinyClip
from tests.vllm_fixtures import VLLMServer

BIN = Path(sys.executable).parent
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0


@dataclass
class ApiServer:
    """The service under uvicorn (one worker) and the API key of its one user."""

    url: str
    key: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM (uvicorn drains), then SIGKILL if it is still there."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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

    The caller stops it with :meth:`ApiServer.stop`, also when this raises after the start.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = api_env(root, clip, vllm)
    subprocess.run([BIN / "repic", "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [BIN / "repic", "users", "create", user], env=env, check=True, capture_output=True
    )
    key = created.stdout.decode().strip().splitlines()[-1]
    port = free_port()
    log_path = root / "api.log"
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            [
                BIN / "uvicorn",
                "--factory",
                "app.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # Its own process group, so group_cpu_s counts it alone.
            start_new_session=True,
        )
    server = ApiServer(url=f"http://127.0.0.1:{port}", key=key, log_path=log_path, process=process)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: ApiServer) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited while starting:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(
        f"the service was not ready within {_START_TIMEOUT_S:.0f} s:\n{server.log_tail()}"
    )
