"""A real S3-compatible HTTP server for the tests: moto in server mode, on loopback.

One server serves the whole session (:func:`s3_server`); every test gets its own bucket
(:func:`s3_storage`), so tests never see each other's objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.server import free_port, start_process, wait_until_answers

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60.0


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def storage_settings(self, bucket: str) -> dict[str, object]:
        """The `storage` settings group pointing at ``bucket`` on this server."""
        return {
            "backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_addressing_style": "path",
            "s3_timeout_s": 2.0,
            "s3_max_attempts": 2,
        }

    def env(self, bucket: str) -> dict[str, str]:
        """The same as REPIC_STORAGE__* environment variables, for a server process."""
        return {
            f"REPIC_STORAGE__{k.upper()}": str(v) for k, v in self.storage_settings(bucket).items()
        }


def start_s3_server(log_dir: Path, port: int | None = None) -> S3Server:
    """Start moto's S3 server on 127.0.0.1 and wait until it answers."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"moto-{port}.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    started = start_process(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env, log_path
    )
    server = S3Server(f"http://127.0.0.1:{port}", started.process, log_path)
    try:
        wait_until_answers(
            started.process,
            f"{server.endpoint_url}/moto-api/",
            log_path,
            what="moto server",
            timeout_s=STARTUP_TIMEOUT_S,
            accept=lambda status: status < 500,
        )
    except BaseException:
        server.stop()
        raise
    return server


def make_bucket(server: S3Server) -> str:
    """A new, empty bucket."""
    from store.s3blobs import S3BlobStore

    bucket = f"repic-{uuid.uuid4().hex[:12]}"
    settings = server.storage_settings(bucket)
    S3BlobStore(
        bucket,
        endpoint_url=server.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        addressing_style=str(settings["s3_addressing_style"]),
    ).ensure_bucket()
    return bucket


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_session_bucket(s3_server: S3Server) -> str:
    return make_bucket(s3_server)


@pytest.fixture
def s3_storage(s3_server: S3Server, s3_session_bucket: str) -> dict[str, object]:
    """The `storage` settings of a fresh key prefix (an empty store) in the session's bucket."""
    return {
        **s3_server.storage_settings(s3_session_bucket),
        "s3_prefix": f"t-{uuid.uuid4().hex[:12]}/",
    }
