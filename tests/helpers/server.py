"""The service as deployments run it, in subprocesses on loopback: `repic db upgrade`, users
from `repic users create`, uvicorn on a free port, `repic worker`.

The one launcher of the tests and the benchmarks (``bench/`` imports it too): start, wait until
an HTTP path answers 200, stop (SIGTERM, then SIGKILL) or kill, and the output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from model.tiny.clip import TinyClip

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_model_env(
    root: Path, clip: TinyClip, qwen_dir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The service's environment on the tiny random-weight models, SQLite and data under
    ``root``, no similarity floor; then ``extra``."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "REPIC_DATABASE_URL": f"sqlite:///{root / 'repic.db'}",
        "REPIC_DATA_DIR": str(root / "data"),
        "REPIC_EMBEDDER__MODEL": str(clip.config_path),
        "REPIC_EMBEDDER__PRETRAINED": str(clip.checkpoint_path),
        "REPIC_VLM__BACKEND": "transformers",
        "REPIC_VLM__MODEL": str(qwen_dir),
        "REPIC_VLM__MAX_TOKENS": "8",
        "REPIC_RETRIEVAL__MIN_SCORE": "-1",
        **(extra or {}),
    }


def repic(env: dict[str, str], *args: str) -> str:
    """Run the `repic` command line; its standard output (its error output in the exception)."""
    done = subprocess.run([BIN / "repic", *args], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"repic {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


def create_users(env: dict[str, str], *names: str) -> dict[str, str]:
    """`repic db upgrade`, then `repic users create` for each name; their API keys."""
    repic(env, "db", "upgrade")
    return {name: repic(env, "users", "create", name).strip().splitlines()[-1] for name in names}


@dataclass
class Process:
    """A started subprocess, its log file and, for a server, where it listens."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    port: int = 0

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.log, chars)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (uvicorn drains its requests), then SIGKILL if it is still there."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine or container dies."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def start_process(
    argv: Sequence[str | Path],
    env: dict[str, str],
    log: Path,
    *,
    new_session: bool = False,
    cwd: Path | None = None,
) -> Process:
    """Start ``argv`` with its output appended to ``log`` (``new_session``: its own process
    group, so its CPU time can be counted apart and signals reach it alone)."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            cwd=cwd,
        )
    return Process(process, log)


def start_uvicorn(
    env: dict[str, str],
    log: Path,
    *,
    port: int,
    uvicorn_args: Sequence[str] = (),
    new_session: bool = False,
) -> Process:
    """uvicorn serving the app on 127.0.0.1:``port``, not waited for (see :func:`wait_ready`)."""
    argv: list[str | Path] = [
        BIN / "uvicorn",
        "--factory",
        "app.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-server-header",
        *uvicorn_args,
    ]
    server = start_process(argv, env, log, new_session=new_session)
    server.url, server.port = f"http://127.0.0.1:{port}", port
    return server


def start_server(
    env: dict[str, str],
    log: Path,
    *,
    port: int | None = None,
    ready_path: str = "/healthz",
    uvicorn_args: Sequence[str] = (),
    timeout_s: float = START_TIMEOUT_S,
    new_session: bool = False,
) -> Process:
    """uvicorn serving the app on 127.0.0.1 (a free port unless given), once ``ready_path``
    answers 200; killed and reported with its log when it exits or times out first."""
    server = start_uvicorn(
        env, log, port=port or free_port(), uvicorn_args=uvicorn_args, new_session=new_session
    )
    try:
        wait_ready(server, ready_path, timeout_s)
    except BaseException:
        server.kill()
        raise
    return server


def wait_ready(server: Process, path: str = "/healthz", timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``path`` of a uvicorn :class:`Process` until it answers 200."""
    wait_until_answers(
        server.process, f"{server.url}{path}", server.log, what="uvicorn", timeout_s=timeout_s
    )


def wait_until_answers(
    process: subprocess.Popen[bytes],
    url: str,
    log: Path,
    *,
    what: str,
    timeout_s: float,
    accept: Callable[[int], bool] = lambda status: status == 200,
) -> None:
    """Poll ``url`` until its status passes ``accept``; RuntimeError with the end of ``log``
    when ``process`` exits or the time is up (any server: uvicorn, vLLM, moto)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode} while starting; the end of "
                f"{log}:\n{_tail(log)}"
            )
        with contextlib.suppress(httpx.TransportError):
            if accept(httpx.get(url, timeout=2).status_code):
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"{what} did not answer {url} within {timeout_s:.0f} s; the end of {log}:\n{_tail(log)}"
    )


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:]


@contextmanager
def running_server(
    env: dict[str, str],
    log: Path,
    *,
    ready_path: str = "/healthz",
    uvicorn_args: Sequence[str] = (),
) -> Iterator[Process]:
    """:func:`start_server` for the length of a ``with`` block, stopped at its end."""
    server = start_server(env, log, ready_path=ready_path, uvicorn_args=uvicorn_args)
    try:
        yield server
    finally:
        server.stop()
