"""Content-addressed image files: named by sha256, written atomically, never by user input."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobError(Exception):
    """The blob directory cannot be written or read (disk full, permissions)."""


class BlobNotFound(BlobError):
    """A row references a blob whose file is missing."""


class BlobStore:
    """Files under ``root/ab/abcdef....jpg``, keyed by the sha256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def key_for(self, sha256: str) -> str:
        """The relative blob key for a digest; refuses anything that is not a hex digest."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{sha256[:2]}/{sha256}.jpg"

    def path(self, key: str) -> Path:
        sha = key.rsplit("/", 1)[-1].removesuffix(".jpg")
        if key != self.key_for(sha):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its key. Temp file + fsync + rename."""
        sha = hashlib.sha256(data).hexdigest()
        key = self.key_for(sha)
        target = self.root / key
        if target.exists() and target.stat().st_size == len(data):
            return key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise BlobError(f"cannot write image file under {self.root}: {exc}") from exc
        return key

    def get(self, key: str) -> bytes:
        """Read a blob's bytes."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(f"image file {key} is missing from {self.root}") from exc
        except OSError as exc:
            raise BlobError(f"cannot read image file {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """Whether the blob's file is present."""
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        """Remove a blob; callers do so only once no row references it."""
        self.path(key).unlink(missing_ok=True)
