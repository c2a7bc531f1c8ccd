"""The README's curl walkthrough, run as written against a live server: every request must
succeed, with the ids the earlier steps print."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from model.tiny.clip import TinyClip
from tests.helpers import images
from tests.helpers.server import REPO_ROOT, create_users, running_server, tiny_model_env

pytestmark = pytest.mark.live

PHOTOS = ("bo1.jpg", "bo2.jpg", "bo3.jpg", "thao.jpg", "park.jpg")


def walkthrough() -> str:
    """The shell block of the walkthrough that talks to the server (the one after `make demo`)."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Walkthrough with curl", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    (block,) = [b for b in blocks if "/concepts" in b]
    return block


def test_the_walkthrough_runs_as_written(
    tmp_path: Path, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> None:
    for tool in ("curl", "jq"):
        assert shutil.which(tool), f"{tool} is needed to run the README's walkthrough"
    env = tiny_model_env(tmp_path, tiny_clip, tiny_qwen_dir, {"REPIC_PRELOAD_MODELS": "true"})
    # Another user first, so that ids differ from what a fresh database would hand out.
    create_users(env, "zoe")
    key = create_users(env, "alice")["alice"]
    work = tmp_path / "work"
    work.mkdir()
    for seed, name in enumerate(PHOTOS, start=1):
        (work / name).write_bytes(images.pattern(seed))
    with running_server(env, tmp_path / "server.log", ready_path="/readyz") as server:
        script = walkthrough().replace("http://127.0.0.1:8000", server.url)
        # Every request must succeed: curl fails on 4xx/5xx, and so does the script.
        prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
        done = subprocess.run(
            ["bash", "-c", prelude + script],
            cwd=work,
            env={"PATH": env["PATH"], "KEY": key},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # The user's own photo is never overwritten by the download of its stored copy.
    assert (work / "bo1.jpg").read_bytes() == images.pattern(1)
    assert (work / "bo3-stored.jpg").read_bytes()[:2] == b"\xff\xd8"
