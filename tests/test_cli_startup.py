"""`repic --help` and the account commands start without the heavy libraries (speed is measured
in BENCHMARKS.md; here only what gets imported)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "open_clip", "faiss", "transformers", "fastapi", "sqlalchemy", "vllm")


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def test_cli_module_imports_no_heavy_library() -> None:
    assert imported_after("import app.cli") == []


def test_help_runs_without_heavy_libraries() -> None:
    code = (
        "from typer.testing import CliRunner\nfrom app.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0"
    )
    assert imported_after(code) == []
