"""Content-addressed image blobs: named by sha256, written atomically, never by user input.

:class:`BlobStore` is the interface; :class:`LocalBlobStore` keeps files in a directory (the
default) and ``store.s3blobs.S3BlobStore`` keeps objects in any S3-compatible bucket. Keys are
the same on both (``ab/abcdef....jpg``), so a deployment can move its photos between them with
a plain copy. Blobs are never deleted inline: ``store.gc`` sweeps unreferenced ones after a
grace period.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})\.jpg$")
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".part"


class BlobError(Exception):
    """The blob store cannot be written or read (disk full, permissions, object store down)."""


class BlobNotFound(BlobError):
    """A row references a blob that is missing."""


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob as a listing sees it."""

    key: str
    size: int
    modified_at: datetime


def key_for(sha256: str) -> str:
    """The relative blob key for a digest; refuses anything that is not a hex digest."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}.jpg"


def sha_of(key: str) -> str:
    """The digest a blob key names; refuses anything that is not a blob key."""
    match = _KEY.fullmatch(key)
    if match is None or match.group(1) != match.group(2)[:2]:
        raise ValueError(f"not a blob key: {key!r}")
    return match.group(2)


class BlobStore(ABC):
    """Where reference photos live. ``put`` and ``get`` are the whole contract of callers."""

    def key_for(self, sha256: str) -> str:
        """The relative blob key for a digest."""
        return key_for(sha256)

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its key; durable once this returns."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """A blob's bytes; :class:`BlobNotFound` if it is missing."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the blob is present."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob (missing is fine). Only the garbage sweep calls this."""

    @abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob with its size and last write time (for the orphan sweep)."""

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Remove half-written temporaries left by a killed writer; how many went."""
        return 0

    @abstractmethod
    def describe(self) -> str:
        """Where the blobs are, for messages to operators (no secrets)."""


class LocalBlobStore(BlobStore):
    """Files under ``root/ab/abcdef....jpg``: temp file + fsync + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file of a blob key."""
        sha_of(key)
        return self.root / key

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its key. Temp file + fsync + rename."""
        key = self.key_for(hashlib.sha256(data).hexdigest())
        target = self.root / key
        try:
            if target.exists() and target.stat().st_size == len(data):
                return key
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
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
        """Remove a blob's file."""
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise BlobError(f"cannot delete image file {key}: {exc}") from exc

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every ``ab/<sha>.jpg`` file under the root (other files are not ours to judge)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/*.jpg"):
            key = path.relative_to(self.root).as_posix()
            if not _KEY.fullmatch(key):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            yield BlobInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Remove ``.tmp-*.part`` files last written before ``older_than``."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob(f"??/{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            try:
                if datetime.fromtimestamp(path.stat().st_mtime, UTC) < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def describe(self) -> str:
        """The directory."""
        return str(self.root)
