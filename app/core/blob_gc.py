"""The blob sweep as the service runs it: `repic gc` and the optional periodic task."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app.core.runtime import Runtime
from store.gc import SweepReport, sweep

log = logging.getLogger(__name__)


def sweep_blobs(
    runtime: Runtime, *, grace_s: float | None = None, orphans: bool = True
) -> SweepReport:
    """One sweep with the configured grace period (or ``grace_s``)."""
    grace = runtime.settings.storage.gc_grace_s if grace_s is None else grace_s
    report = sweep(
        runtime.sessions,
        runtime.blobs,
        timedelta(seconds=grace),
        orphans=orphans,
        caption_retention=timedelta(days=runtime.settings.history.retention_days),
    )
    if report.captions_expired:
        log.info("caption history: %d kept caption(s) expired", report.captions_expired)
    if report.deleted or report.orphans_found or report.temporaries_removed or report.failed:
        log.info(
            "blob sweep: %d deleted, %d still referenced, %d orphans found, %d temporaries "
            "removed, %d failed",
            report.deleted,
            report.still_referenced,
            report.orphans_found,
            report.temporaries_removed,
            report.failed,
        )
    return report


async def periodic_sweep(runtime: Runtime) -> None:
    """Sweep every ``gc_interval_s`` until cancelled; a failed sweep is logged and retried."""
    interval = runtime.settings.storage.gc_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await runtime.run(sweep_blobs, runtime)
        except Exception:
            log.exception("blob sweep failed; retrying in %.0f s", interval)
