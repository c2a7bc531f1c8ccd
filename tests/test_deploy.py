"""The deployment files: lint them, render them with Compose, and check the serving contract.

No Docker engine is needed: hadolint and `docker-compose config` only read the files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Le

from app.core.settings import (
    DEFAULT_ADMIN_TOKEN,
    QWEN_PIXELS_PER_TOKEN,
    RetrievalSettings,
    VLMSettings,
)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.lora.yml")
REPIC_CHECKPOINT = "Yeongtak/RePIC_Qwen2.5VL_7B"
TEXT_TOKEN_ALLOWANCE = 1024


def _tool(name: str) -> str:
    for directory in (Path(sys.executable).parent, *map(Path, os.environ["PATH"].split(":"))):
        if (directory / name).is_file():
            return str(directory / name)
    pytest.fail(f"{name} not found: install the dev extras (pip install -e '.[dev]')")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _compose_config(tmp_path: Path, files: tuple[str, ...], env_file: Path | None = None) -> Any:
    """Render the compose files as a fresh clone would: own folder, no shell variables."""
    for name in COMPOSE_FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    if env_file is not None:
        shutil.copy(env_file, tmp_path / ".env")
    args = [_tool("docker-compose")]
    for name in files:
        args += ["-f", name]
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    _run([*args, "config", "--quiet"], tmp_path, clean_env)
    return yaml.safe_load(_run([*args, "config"], tmp_path, clean_env))


def _flag(command: list[str], name: str) -> str:
    assert name in command, f"{command[0]} is started without {name}"
    return command[command.index(name) + 1]


def _seconds(duration: str) -> int:
    """Compose renders durations the Go way: `20m0s`, `1h0m0s`."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+)([hms])", duration))


def _top_k_max() -> int:
    metadata = RetrievalSettings.model_fields["top_k"].metadata
    limits = [m.le for m in metadata if isinstance(m, Le) and isinstance(m.le, int)]
    assert limits, "RetrievalSettings.top_k has no upper bound"
    return limits[0]


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _compose_config(tmp_path_factory.mktemp("gpu"), COMPOSE_FILES[:1])


def test_dockerfile_passes_hadolint() -> None:
    _run([_tool("hadolint"), "--failure-threshold", "warning", "Dockerfile"], ROOT)


def test_dockerfile_pins_the_torch_pair_of_pyproject() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = dict(dep.split("==") for dep in pyproject["project"]["dependencies"] if "==" in dep)
    assert f"ARG TORCH_VERSION={pins['torch']}\n" in dockerfile
    assert f"ARG TORCHVISION_VERSION={pins['torchvision']}\n" in dockerfile


def test_dockerfile_runs_unprivileged_on_a_pinned_base() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    python = [b for b in bases if b.startswith("python:")]
    assert len(python) == 2 and len(set(python)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", python[0])
    # the web UI's build stage (node): pinned too
    assert all(
        re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", b) for b in bases if b not in python
    )
    user = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)[-1]
    assert user.split(":")[0] not in ("0", "root")
    assert "/healthz" in dockerfile.split("HEALTHCHECK", 1)[1]


def test_gpu_stack_serves_the_repic_checkpoint(gpu_stack: Any) -> None:
    vllm = gpu_stack["services"]["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:v")
    assert vllm["command"][0] == REPIC_CHECKPOINT
    served = _flag(vllm["command"], "--served-model-name")
    assert gpu_stack["services"]["api"]["environment"]["REPIC_VLM__MODEL"] == served


def test_vllm_limits_fit_the_largest_repic_prompt(gpu_stack: Any) -> None:
    command = gpu_stack["services"]["vllm"]["command"]
    image_limit = json.loads(_flag(command, "--limit-mm-per-prompt"))["image"]
    assert image_limit >= _top_k_max() + 1
    max_pixels = VLMSettings.model_fields["max_pixels"].default
    assert json.loads(_flag(command, "--mm-processor-kwargs"))["max_pixels"] == max_pixels
    visual_tokens = image_limit * max_pixels // QWEN_PIXELS_PER_TOKEN
    assert int(_flag(command, "--max-model-len")) >= visual_tokens + TEXT_TOKEN_ALLOWANCE


def test_vllm_is_private_and_gets_the_gpu(gpu_stack: Any) -> None:
    vllm = gpu_stack["services"]["vllm"]
    assert "ports" not in vllm
    assert "ports" not in gpu_stack["services"]["db"]
    assert vllm["ipc"] == "host"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}.items() <= devices[0].items()
    api_key = gpu_stack["services"]["api"]["environment"]["REPIC_VLM__API_KEY"]
    assert _flag(vllm["command"], "--api-key") == api_key


def test_every_service_has_a_healthcheck(gpu_stack: Any) -> None:
    services = gpu_stack["services"]
    assert {"db", "vllm", "api"} <= services.keys()
    for name in ("db", "vllm", "api"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/health'" in " ".join(services["vllm"]["healthcheck"]["test"])
    assert "/healthz'" in " ".join(services["api"]["healthcheck"]["test"])
    assert _seconds(services["vllm"]["healthcheck"]["start_period"]) >= 10 * 60


def test_api_waits_for_healthy_db_and_vllm(gpu_stack: Any) -> None:
    api = gpu_stack["services"]["api"]
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "db": "service_healthy",
        "vllm": "service_healthy",
    }
    env = api["environment"]
    assert env["REPIC_VLM__BACKEND"] == "openai"
    assert env["REPIC_VLM__BASE_URL"] == "http://vllm:8000/v1"
    assert env["REPIC_DATABASE_URL"].startswith("postgresql+psycopg://repic:")
    assert env["REPIC_DATABASE_URL"].endswith("@db:5432/repic")
    assert env["REPIC_ENV"] == "production"
    assert any(volume["target"] == "/data" for volume in api["volumes"])
    assert [port["target"] for port in api["ports"]] == [8000]


def test_cpu_override_drops_vllm(tmp_path: Path) -> None:
    stack = _compose_config(tmp_path, COMPOSE_FILES[:2])
    assert set(stack["services"]) == {"db", "api"}
    api = stack["services"]["api"]
    assert set(api["depends_on"]) == {"db"}
    assert api["environment"]["REPIC_VLM__BACKEND"] == "transformers"


def test_lora_override_serves_the_adapter_under_the_name_the_api_asks_for(
    tmp_path: Path, gpu_stack: Any
) -> None:
    stack = _compose_config(tmp_path, (COMPOSE_FILES[0], COMPOSE_FILES[2]))
    vllm, api = stack["services"]["vllm"], stack["services"]["api"]
    command = vllm["command"]
    assert command[0] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "--enable-lora" in command
    assert _flag(command, "--lora-modules") == "repic-lora=/adapters/lora"
    assert int(_flag(command, "--max-lora-rank")) >= 64  # the paper's rank
    assert api["environment"]["REPIC_VLM__MODEL"] == "repic-lora"
    assert any(v["target"] == "/adapters/lora" and v["read_only"] for v in vllm["volumes"])
    # every other flag of the merged-checkpoint layout is kept
    plain = gpu_stack["services"]["vllm"]["command"]
    for flag in ("--limit-mm-per-prompt", "--max-model-len", "--mm-processor-kwargs"):
        assert _flag(command, flag) == _flag(plain, flag)


def test_env_example_renders_and_documents_every_variable(tmp_path: Path) -> None:
    example = ROOT / ".env.example"
    stack = _compose_config(tmp_path, COMPOSE_FILES[:1], env_file=example)
    # Compose inlines env_file: a key set only in .env proves the api reads it.
    assert "REPIC_ADMIN_TOKEN" in stack["services"]["api"]["environment"]
    lines = example.read_text().splitlines()
    assigned = {}
    for number, line in enumerate(lines):
        if re.match(r"[A-Z_][A-Z0-9_]*=", line):
            assert lines[number - 1].startswith("#"), f"{line} has no comment above it"
            assigned[line.split("=", 1)[0]] = line
    used = set()
    for name in COMPOSE_FILES:
        for line in (ROOT / name).read_text().splitlines():
            if not line.lstrip().startswith("#"):
                # `$${X}` is an escape for the container's shell, not a Compose variable.
                used |= set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", line))
    assert used - assigned.keys() == set()


def _fake_bin(tmp_path: Path, log: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("alembic", "uvicorn", "repic"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        script.chmod(0o755)
    return bin_dir


def _prestart(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, list[str]]:
    """Run the entrypoint with stand-ins for alembic, uvicorn and repic; return what it did."""
    log = tmp_path / "calls.log"
    path = f"{_fake_bin(tmp_path, log)}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    full_env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "REPIC_ENV": "development",
        "REPIC_DATABASE_URL": f"sqlite:///{tmp_path}/repic.db",
        **env,
    }
    result = subprocess.run(
        ["sh", str(ROOT / "docker" / "prestart.sh"), *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, result.stderr, calls


def test_prestart_migrates_then_serves(tmp_path: Path) -> None:
    code, _, calls = _prestart(tmp_path, REPIC_UVICORN_WORKERS="3", REPIC_GRACE_S="12")
    assert code == 0
    assert calls[0] == "alembic upgrade head"
    uvicorn = calls[1].split()
    assert uvicorn[:3] == ["uvicorn", "app.main:create_app", "--factory"]
    assert _flag(uvicorn, "--workers") == "3"
    assert _flag(uvicorn, "--timeout-graceful-shutdown") == "12"
    assert _flag(uvicorn, "--host") == "0.0.0.0"
    assert "--proxy-headers" in uvicorn


def test_prestart_hides_the_server_banner(tmp_path: Path) -> None:
    _, _, calls = _prestart(tmp_path)
    assert "--no-server-header" in calls[1].split()


def test_prestart_can_skip_migrations(tmp_path: Path) -> None:
    code, _, calls = _prestart(tmp_path, REPIC_RUN_MIGRATIONS="0")
    assert code == 0
    assert [call.split()[0] for call in calls] == ["uvicorn"]


def test_prestart_refuses_default_secrets_before_migrating(tmp_path: Path) -> None:
    code, stderr, calls = _prestart(
        tmp_path, REPIC_ENV="production", REPIC_ADMIN_TOKEN=DEFAULT_ADMIN_TOKEN
    )
    assert code == 1
    assert "REPIC_ADMIN_TOKEN is still the default" in stderr
    assert calls == []


def test_prestart_runs_a_given_command_instead_of_serving(tmp_path: Path) -> None:
    assert _prestart(tmp_path, "repic", "--help") == (0, "", ["repic --help"])


def test_wait_for_db_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "REPIC_ENV": "development",
        "REPIC_DATABASE_URL": f"postgresql+psycopg://repic:hunter2@127.0.0.1:{port}/repic",
        "REPIC_DB_WAIT_S": "1",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "wait_for_db.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not reachable after 1 s" in result.stderr
    assert "REPIC_DATABASE_URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_image_requirements_follow_pyproject() -> None:
    script = [sys.executable, str(ROOT / "docker" / "pyproject_requirements.py"), "pyproject.toml"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _run([*script, ""], ROOT).split() == pyproject["dependencies"]
    with_train = _run([*script, "train"], ROOT).split()
    assert with_train == pyproject["dependencies"] + pyproject["optional-dependencies"]["train"]
    refused = subprocess.run([*script, "gpu"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "unknown extras ['gpu']" in refused.stderr
