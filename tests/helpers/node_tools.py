"""The pinned npm tools under clients/typescript/node_modules (installed by `make test`)."""

from __future__ import annotations

from pathlib import Path

import pytest

TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def node_tool(name: str) -> Path:
    tool = TS / "node_modules" / ".bin" / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run `make test` (it runs `npm ci` in clients/typescript)")
    return tool
