"""Room for new photos: the per-user quotas, the disk reserve, and the storage error.

Shared by reference photos (:mod:`app.services.concepts`) and kept captions
(:mod:`app.services.history`), which count against the same quotas.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.settings import QuotaSettings
from app.services.errors import Conflict, Unavailable
from model.images import NormalizedImage
from store.blobs import BlobError
from store.repositories import Usage

log = logging.getLogger(__name__)


def check_quota(
    quota: QuotaSettings, usage: Usage, images: Sequence[NormalizedImage], *, new_concept: bool
) -> None:
    """409 ``quota-exceeded`` when adding ``images`` (and a concept) would pass a quota."""
    added_bytes = sum(len(img.data) for img in images)
    if new_concept and usage.concepts + 1 > quota.concepts:
        over = f"you have {usage.concepts} concepts; the limit is {quota.concepts}"
    elif usage.photos + len(images) > quota.photos:
        over = f"you have {usage.photos} photos; the limit is {quota.photos}"
    elif usage.stored_bytes + added_bytes > quota.stored_bytes:
        over = (
            f"your photos take {usage.stored_bytes:,} bytes, these {added_bytes:,} more; the "
            f"limit is {quota.stored_bytes:,}"
        )
    else:
        return
    raise Conflict("quota-exceeded", f"Nothing was stored: {over}. Delete something first.")


@dataclass(frozen=True)
class DiskReserve:
    """Keep REPIC_MIN_FREE_DISK_BYTES free under the data directory, so deletes (and the
    database) never meet a full disk."""

    data_dir: Path
    min_free_bytes: int

    def check(self, incoming: int) -> None:
        """503 ``storage-full`` when writing ``incoming`` bytes would eat into the reserve."""
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            return  # the write itself reports an unusable directory
        if free - incoming < self.min_free_bytes:
            log.error("refusing an upload: %s bytes free on the data disk", free)
            raise Unavailable(
                "storage-full",
                "The server's disk is nearly full, so nothing was stored; deleting still works. "
                "Retry later; operators: free space under REPIC_DATA_DIR.",
                retry_after_s=300,
            )


def storage_problem(exc: BlobError) -> Unavailable:
    log.error("image storage failed: %s", exc)
    return Unavailable(
        "storage-unavailable",
        "The image store cannot be written or read; nothing was changed. Retry later; "
        "operators: check the blob store (free disk space and permissions of REPIC_DATA_DIR, "
        "or the reachability and credentials of the REPIC_STORAGE__S3_* bucket).",
        retry_after_s=30,
    )
