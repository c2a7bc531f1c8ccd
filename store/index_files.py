"""A user's index on disk: a checksummed base file plus an append-only log of later changes.

``user_<id>.idx`` holds a header (JSON: format, version, embedder id, dim, row count, epoch and
the sha256 of the body) and the body: image ids, concept ids and fp32 vectors. It is written to a
temporary file and renamed into place, then a fresh ``user_<id>.log`` for its epoch replaces the
old log the same way. A change after that appends one record to the log: its version, the
operation, the rows, and a sha256 over the record, so an add costs O(added vectors), not
O(index). When the log outgrows the base, the caller writes a new base (compaction).

Reading trusts nothing: a log of another epoch is ignored, records are applied only while their
versions follow one another and their checksums hold, and any parse failure of the base (torn,
truncated, inconsistent header, duplicate ids) makes :meth:`IndexFiles.read` return ``None`` so
the caller rebuilds from the database. The database version decides whether what was read is
current, so a crash anywhere in a write loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 2
_BASE_MAGIC = b"RPIDX2\n"
_LOG_MAGIC = b"RPLOG2\n"
_RECORD = struct.Struct("<32sQQBI")  # sha256 of the rest, length of the rest, version, op, n
_ADD, _REMOVE = 1, 2
log = logging.getLogger(__name__)


class CorruptIndexFile(ValueError):
    """A base file whose content does not parse although it may pass the checksum."""


@dataclass(frozen=True)
class LogRecord:
    """One committed change: rows added (or replaced) or removed, at ``version``."""

    version: int
    image_ids: np.ndarray
    concept_ids: np.ndarray | None = None
    vectors: np.ndarray | None = None

    @property
    def is_add(self) -> bool:
        return self.vectors is not None


@dataclass
class StoredIndex:
    """What the files hold: the base rows, the log records that follow it, and sizes."""

    version: int
    embedder_id: str
    epoch: str
    image_ids: np.ndarray
    concept_ids: np.ndarray
    vectors: np.ndarray
    base_bytes: int
    log_bytes: int
    records: list[LogRecord] = field(default_factory=list)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class IndexFiles:
    """Reads and writes the base and log files of each user under ``index_dir``."""

    def __init__(self, index_dir: Path, dim: int) -> None:
        self.index_dir = index_dir
        self.dim = dim

    def paths(self, user_id: int) -> tuple[Path, Path]:
        """``(base, log)`` paths of a user."""
        stem = self.index_dir / f"user_{int(user_id)}"
        return stem.with_suffix(".idx"), stem.with_suffix(".log")

    def remove(self, user_id: int) -> None:
        """Delete the user's files, those of the older single-file format included."""
        stem = self.index_dir / f"user_{int(user_id)}"
        for suffix in (".idx", ".log", ".faiss", ".json"):
            stem.with_suffix(suffix).unlink(missing_ok=True)

    def write_base(
        self,
        user_id: int,
        *,
        version: int,
        embedder_id: str,
        image_ids: np.ndarray,
        concept_ids: np.ndarray,
        vectors: np.ndarray,
    ) -> tuple[str, int, int]:
        """Write a new base and an empty log; returns ``(epoch, base bytes, log bytes)``."""
        body = b"".join(
            (
                np.ascontiguousarray(image_ids, dtype="<i8").tobytes(),
                np.ascontiguousarray(concept_ids, dtype="<i8").tobytes(),
                np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
            )
        )
        epoch = uuid.uuid4().hex
        header = json.dumps(
            {
                "format": FORMAT,
                "version": version,
                "embedder_id": embedder_id,
                "dim": self.dim,
                "n": len(image_ids),
                "epoch": epoch,
                "sha256": hashlib.sha256(body).hexdigest(),
            },
            separators=(",", ":"),
        ).encode()
        data = _BASE_MAGIC + struct.pack("<I", len(header)) + header + body
        base, log_path = self.paths(user_id)
        _write_atomically(base, data)
        head = _LOG_MAGIC + epoch.encode()
        _write_atomically(log_path, head)
        return epoch, len(data), len(head)

    def append(self, user_id: int, expected_size: int, record: LogRecord) -> int | None:
        """Append ``record`` if the log is exactly ``expected_size`` bytes long.

        Returns the new size, or ``None`` when the log is not what the caller last wrote
        (another process wrote, or a write was torn): the caller then writes a new base.
        """
        n = len(record.image_ids)
        parts = [np.ascontiguousarray(record.image_ids, dtype="<i8").tobytes()]
        if record.is_add:
            assert record.concept_ids is not None and record.vectors is not None
            parts.append(np.ascontiguousarray(record.concept_ids, dtype="<i8").tobytes())
            parts.append(np.ascontiguousarray(record.vectors, dtype="<f4").tobytes())
        payload = b"".join(parts)
        op = _ADD if record.is_add else _REMOVE
        rest = struct.pack("<QBI", record.version, op, n) + payload
        digest = hashlib.sha256(rest).digest()
        data = _RECORD.pack(digest, len(rest), record.version, op, n) + payload
        _, log_path = self.paths(user_id)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
        try:
            if os.fstat(fd).st_size != expected_size:
                return None
            os.write(fd, data)
        finally:
            os.close(fd)
        return expected_size + len(data)

    def read(self, user_id: int) -> StoredIndex | None:
        """The stored index, or ``None`` when there is none or the base cannot be trusted."""
        base, log_path = self.paths(user_id)
        try:
            data = base.read_bytes()
        except OSError:
            return None
        try:
            stored = self._parse_base(data)
        except (CorruptIndexFile, ValueError, KeyError, TypeError, struct.error) as exc:
            log.warning("index file of user %s cannot be used (%s); rebuilding", user_id, exc)
            return None
        try:
            log_data = log_path.read_bytes()
        except OSError:
            log_data = b""
        self._replay(stored, log_data)
        return stored

    def _parse_base(self, data: bytes) -> StoredIndex:
        if not data.startswith(_BASE_MAGIC):
            raise CorruptIndexFile("not an index file of this format")
        offset = len(_BASE_MAGIC)
        (header_len,) = struct.unpack_from("<I", data, offset)
        offset += 4
        meta = json.loads(data[offset : offset + header_len])
        body = data[offset + header_len :]
        if meta["format"] != FORMAT or meta["dim"] != self.dim:
            raise CorruptIndexFile("written for another format or dimension")
        if meta["sha256"] != hashlib.sha256(body).hexdigest():
            raise CorruptIndexFile("checksum mismatch (torn write)")
        n = int(meta["n"])
        if n < 0 or len(body) != n * (16 + 4 * self.dim):
            raise CorruptIndexFile(f"{len(body)} body bytes do not hold {n} rows")
        ids = np.frombuffer(body, dtype="<i8", count=n).astype(np.int64)
        concepts = np.frombuffer(body, dtype="<i8", count=n, offset=8 * n).astype(np.int64)
        vecs = np.frombuffer(body, dtype="<f4", offset=16 * n).astype(np.float32)
        if len(np.unique(ids)) != n:
            raise CorruptIndexFile("duplicate image ids")
        return StoredIndex(
            version=int(meta["version"]),
            embedder_id=str(meta["embedder_id"]),
            epoch=str(meta["epoch"]),
            image_ids=ids,
            concept_ids=concepts,
            vectors=vecs.reshape(n, self.dim),
            base_bytes=len(data),
            log_bytes=0,
        )

    def _replay(self, stored: StoredIndex, data: bytes) -> None:
        head = _LOG_MAGIC + stored.epoch.encode()
        if not data.startswith(head):
            return  # no log, or the log of an older base
        offset = len(head)
        while offset + _RECORD.size <= len(data):
            digest, length, version, op, n = _RECORD.unpack_from(data, offset)
            start = offset + 32 + 8
            rest = data[start : start + length]
            if len(rest) != length or hashlib.sha256(rest).digest() != digest:
                break  # torn tail
            expected_version = stored.records[-1].version if stored.records else stored.version
            if version != expected_version + 1 or op not in (_ADD, _REMOVE):
                break
            payload = rest[13:]
            ids = np.frombuffer(payload, dtype="<i8", count=n).astype(np.int64)
            if op == _ADD:
                concepts = np.frombuffer(payload, dtype="<i8", count=n, offset=8 * n)
                vecs = np.frombuffer(payload, dtype="<f4", offset=16 * n)
                if vecs.size != n * self.dim:
                    break
                record = LogRecord(
                    version, ids, concepts.astype(np.int64), vecs.reshape(n, self.dim).copy()
                )
            else:
                record = LogRecord(version, ids)
            stored.records.append(record)
            offset = start + length
        stored.log_bytes = offset
