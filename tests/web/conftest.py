"""A live server (demo tiny models), Debian's Chromium driven by Playwright, and screenshots.

Screenshots of every page go to var/ui-screenshots on each run (git-ignored); a failing test
adds its last view as FAILED-<test>.png there."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from model.tiny.clip import TinyClip
from tests.helpers.server import create_users, running_server, tiny_model_env
from tests.web.photos import scene

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "ui-screenshots"
MAX_BYTES = 200_000


@dataclass
class Live:
    url: str
    key: str
    photos: Path


def chromium() -> str:
    """Debian's chromium, installed with apt when missing (Playwright's download is unreachable)."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("chromium")
    assert found, "chromium is not installed and apt-get could not install it"
    return found


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> Iterator[Live]:
    if not (ROOT / "app" / "ui_dist" / "index.html").is_file():
        pytest.fail("the web UI is not built: run `make web` (make test builds it)")
    root = tmp_path_factory.mktemp("web")
    env = tiny_model_env(
        root, tiny_clip, tiny_qwen_dir, {"REPIC_UPLOAD__MAX_BYTES": str(MAX_BYTES)}
    )
    key = create_users(env, "ada")["ada"]
    photos = root / "photos"
    photos.mkdir()
    for seed in range(1, 9):
        (photos / f"photo-{seed}.jpg").write_bytes(scene(seed))
    (photos / "too-big.jpg").write_bytes(scene(9) + b"\0" * MAX_BYTES)
    (photos / "notes.txt").write_bytes(b"shopping list: socks, tennis balls\n")
    with running_server(env, root / "server.log") as server:
        yield Live(url=server.url, key=key, photos=photos)


# Module scope, not session: Playwright's sync API keeps its event loop marked as running in the
# main thread until it stops, and every async test after it would fail to start its own loop.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SHOTS.glob("FAILED-*.png"):
        stale.unlink()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    page = getattr(item, "ui_page", None)
    if report.when == "call" and report.failed and isinstance(page, Page) and not page.is_closed():
        page.screenshot(path=SHOTS / f"FAILED-{item.name}.png", full_page=True)
    return report
