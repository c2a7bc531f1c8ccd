"""CLI start-up: wall time of `repic --help` and `repic users create`, and the cumulative import
time of `app.cli` from ``python -X importtime``.

Run from the repository root: ``python -m bench.cli_startup`` (under a minute; it updates the cli
section of BENCHMARKS.md). ``--quick`` writes nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.markdown import cpu_model, write_section

REPIC = str(Path(sys.executable).with_name("repic"))


def wall_ms(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    return (time.perf_counter() - start) * 1e3


def import_ms(module: str) -> float:
    """Cumulative import time of ``module`` as ``-X importtime`` reports it."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stderr
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e3
    raise RuntimeError(f"{module} not in the import-time report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="no BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    reps = 5
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "REPIC_DATABASE_URL": f"sqlite:///{tmp}/repic.db",
            "REPIC_DATA_DIR": tmp,
            "REPIC_LOG_FORMAT": "inherit",
        }
        subprocess.run([REPIC, "db", "upgrade"], env=env, check=True, capture_output=True)
        helps = sorted(wall_ms([REPIC, "--help"], env) for _ in range(reps))
        creates = sorted(wall_ms([REPIC, "users", "create", f"u{i}"], env) for i in range(reps))
    imports = sorted(import_ms("app.cli") for _ in range(reps))
    rows = [
        ("`repic --help`", helps),
        ("`repic users create NAME`", creates),
        ("`import app.cli` (-X importtime, cumulative)", imports),
    ]
    lines = ["| command | min ms | median ms |", "|---|---|---|"]
    lines += [f"| {label} | {v[0]:.0f} | {v[len(v) // 2]:.0f} |" for label, v in rows]
    body = "\n\n".join(
        [
            "## CLI start-up",
            f"Command: `python -m bench.cli_startup`. Measured {datetime.now(UTC):%Y-%m-%d} on "
            f"{cpu_model()}, {os.cpu_count()} shared cores (load average "
            f"{os.getloadavg()[0]:.1f}); {reps} runs each. torch, open_clip, FAISS, FastAPI and "
            "SQLAlchemy load only inside the commands that use them.",
            "\n".join(lines),
        ]
    )
    print(body)
    if not args.quick:
        write_section(args.output, "cli", body)


if __name__ == "__main__":
    main()
