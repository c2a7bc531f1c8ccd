"""Schemathesis against the live service, in every `make test`: a fixed seed and a case budget
that keeps it near a minute and a half. 0 server errors, 0 undocumented statuses or content
types. The large run is `make fuzz` (RELIABILITY.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.tiny.clip import TinyClip
from tests.helpers.fuzz import FUZZ_LIMITS, fuzz
from tests.helpers.live_server import live_server, prepare, server_env

pytestmark = pytest.mark.fuzz


def test_fuzzing_finds_no_server_error_and_nothing_undocumented(
    tmp_path: Path, tiny_clip: TinyClip, tiny_qwen_dir: Path
) -> None:
    env = {
        **server_env(tmp_path, tiny_clip.config_path, tiny_clip.checkpoint_path, tiny_qwen_dir),
        **FUZZ_LIMITS,
    }
    with live_server(env, prepare(env), tmp_path / "server.log") as server:
        result = fuzz(server, max_examples=40)
    if result.failures or result.errors:
        pytest.fail("\n".join(result.errors))
    assert result.server_errors == 0, result.statuses
    assert result.cases > 1000, result
