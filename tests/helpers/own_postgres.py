"""A throw-away PostgreSQL cluster of one test: initdb in a temporary directory, its own port on
127.0.0.1, stopped and removed afterwards. Tests that stop or restart PostgreSQL use this, never
the shared cluster of `tests/pg/start.sh`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.server import free_port


def _bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: run tests/pg/start.sh (make test does)")
    return str(versions[-1] / name)


def _as_postgres(*command: str) -> list[str]:
    return list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


@dataclass
class OwnPostgres:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        # The server's output goes to a log file: a pipe would be inherited by the daemon and
        # never reach end-of-file.
        subprocess.run(
            _as_postgres(
                _bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir / "server.log"),
                "-w",
                "-t",
                "60",
                *args,
            ),
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=90,
        )

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("the throw-away PostgreSQL did not become ready")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    root = Path(tempfile.mkdtemp(prefix="repic-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        _as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    cluster = OwnPostgres(data_dir=data, port=free_port())
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
