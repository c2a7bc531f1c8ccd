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


def test_account_commands_load_neither_fastapi_nor_numpy() -> None:
    # `repic users create` needs the database layer, not the web framework, numpy or the
    # eval/train stacks (httpx, the metrics).
    probe = (
        "import sys\nfrom app.cli import cli\n"
        "import app.services.users, app.core.settings, store.db\n"
        "print(' '.join(m for m in ('fastapi', 'numpy', 'httpx', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == []


def test_eval_and_train_mount_when_invoked() -> None:
    code = (
        "from typer.testing import CliRunner\nfrom app.cli import cli\n"
        "helped = CliRunner().invoke(cli, ['--help'])\n"
        "assert helped.exit_code == 0 and 'eval' in helped.output and 'train' in helped.output\n"
        "assert 'evaluation.cli' not in sys.modules\n"
        "r = CliRunner().invoke(cli, ['eval', '--help'])\n"
        "assert r.exit_code == 0 and 'grounding' in r.output, r.output\n"
        "r = CliRunner().invoke(cli, ['train', '--help'])\n"
        "assert r.exit_code == 0 and 'build-data' in r.output, r.output"
    )
    imported_after(code)  # raises when an assertion in the child fails
