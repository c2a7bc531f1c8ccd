"""A real vLLM OpenAI-compatible server on the CPU, serving the tiny random-weight Qwen2.5-VL.

The server runs from ``.venv-vllm`` (built by ``tests/vllm_cpu/install.sh``, which ``make test``
calls) and starts in about a minute, so one instance serves the whole session
(:func:`vllm_server`), with the tiny LoRA adapter :data:`LORA_ADAPTER_NAME` served beside the base
model (``--enable-lora``), and a second one (:func:`second_vllm_server`) joins it for the router's
fleet. Tests that stop a session's server are marked ``stops_vllm``: tests/conftest.py runs them
after every other test. :func:`start_vllm_server` starts a server of a test's own.

The fixtures are a pytest plugin (tests/conftest.py): use them by name, never import them into a
test module (each import would start another server).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.server import free_port, start_process, wait_until_answers

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
INSTALL_SCRIPT = REPO_ROOT / "tests" / "vllm_cpu" / "install.sh"

SERVED_MODEL_NAME = "tiny-qwen25vl"
#: The session server's LoRA adapter, named as a model of its own (``--lora-modules``).
LORA_ADAPTER_NAME = "tiny-lora"
API_KEY = "test-vllm-key-0123456789"
#: Four demonstrations and the query (top_k + 1).
MAX_IMAGES = 5
#: 128 visual tokens per image at most: small enough for CPU start-up and requests.
MAX_PIXELS = 128 * 28 * 28
MAX_MODEL_LEN = 4096
STARTUP_TIMEOUT_S = 600.0
_STOP_TIMEOUT_S = 10.0


@dataclass
class VLLMServer:
    """One running server: where to reach it and how it was started."""

    base_url: str
    api_key: str
    model_name: str
    model_dir: Path
    max_pixels: int
    max_images: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def stop(self) -> None:
        """SIGTERM the API server, which stops its engine processes, then SIGKILL what is left.

        start_new_session made the API server the leader of a process group that the engine
        core and worker share, so nothing of the server outlives this.
        """
        group = self.process.pid
        if self.process.poll() is None:
            # Only the API server: signalled directly, the engine processes would exit without
            # failing the requests in flight, and the HTTP server would wait for those.
            self.process.send_signal(signal.SIGTERM)
        if not self._group_gone(group, _STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self._group_gone(group, _STOP_TIMEOUT_S)

    def _group_gone(self, group: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader, or it lingers as a zombie of the group
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _require_environment() -> None:
    if not VLLM_PYTHON.exists():
        script = INSTALL_SCRIPT.relative_to(REPO_ROOT)
        pytest.fail(
            f"The vLLM CPU environment is missing ({VLLM_PYTHON.parent.parent.name}/): run the "
            f"suite with `make test`, or build it once with `{script}`."
        )


def server_command(model_dir: Path, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The vLLM command line: the OpenAI server with the flags the service relies on."""
    return [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        SERVED_MODEL_NAME,
        "--api-key",
        API_KEY,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--limit-mm-per-prompt",
        json.dumps({"image": MAX_IMAGES, "video": 0}),
        "--mm-processor-kwargs",
        json.dumps({"max_pixels": MAX_PIXELS}),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        # torch.compile of the model would add a minute to every start for a 40 MB model.
        "--enforce-eager",
        "--disable-uvicorn-access-log",
        *extra_args,
    ]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        # The KV cache is carved out of RAM up front: 1 GiB holds far more than the tests send.
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        TOKENIZERS_PARALLELISM="false",
    )
    # The service's own environment must not leak into the other interpreter.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    return env


def start_vllm_server(
    model_dir: Path, work_dir: Path, extra_args: Sequence[str] = ()
) -> VLLMServer:
    """Start a server on a free loopback port and wait until ``GET /health`` answers 200.

    ``extra_args`` are added to :func:`server_command`'s flags (``--enable-lora ...``).

    Fails the test (never skips) when the environment is missing or the server does not come
    up, with the end of its log. The caller stops it with :meth:`VLLMServer.stop`.
    """
    _require_environment()
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work_dir / f"vllm-{port}.log"
    # vLLM's own cache (~/.cache/vllm) keeps the model inspection of earlier runs (20 s).
    process = start_process(
        server_command(model_dir, port, extra_args),
        _server_env(),
        log_path,
        new_session=True,
        cwd=work_dir,
    ).process
    server = VLLMServer(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=API_KEY,
        model_name=SERVED_MODEL_NAME,
        model_dir=model_dir,
        max_pixels=MAX_PIXELS,
        max_images=MAX_IMAGES,
        log_path=log_path,
        process=process,
    )
    try:
        _wait_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: VLLMServer) -> None:
    wait_until_answers(
        server.process,
        f"{server.root_url}/health",
        server.log_path,
        what="vLLM",
        timeout_s=STARTUP_TIMEOUT_S,
    )


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random rank-8 LoRA adapter for the tiny checkpoint (it changes the model's output)."""
    from model.tiny.lora import build_tiny_lora_adapter

    return build_tiny_lora_adapter(tiny_qwen_dir, tmp_path_factory.mktemp("lora") / "adapter")


def lora_flags(adapter_dir: Path) -> list[str]:
    """The flags that serve ``adapter_dir`` as the model :data:`LORA_ADAPTER_NAME`."""
    return [
        "--enable-lora",
        "--lora-modules",
        f"{LORA_ADAPTER_NAME}={adapter_dir}",
        "--max-lora-rank",
        "8",
        "--max-loras",
        "1",
    ]


@pytest.fixture(scope="session")
def vllm_server(
    tiny_qwen_dir: Path, tiny_lora_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMServer]:
    """The session's vLLM server: the tiny Qwen2.5-VL checkpoint, and its LoRA adapter beside
    it (one start instead of two; a request that names the base model never uses the adapter)."""
    server = start_vllm_server(
        tiny_qwen_dir, tmp_path_factory.mktemp("vllm"), lora_flags(tiny_lora_dir)
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def second_vllm_server(
    tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMServer]:
    """A second server of the session (the base model only), started on first use: for the
    router's two-backend fleet, which stops it at the end (marker ``stops_vllm``)."""
    server = start_vllm_server(tiny_qwen_dir, tmp_path_factory.mktemp("vllm-second"))
    try:
        yield server
    finally:
        server.stop()
