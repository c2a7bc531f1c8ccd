"""`repic gc`: the blob sweep, for a cron job or by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.core.settings import Settings

# The runtime (torch, the embedder, the blob store) loads inside the command, so that `repic
# --help` and the account commands start at once.

console = Console()


def gc(
    grace_s: Annotated[
        float | None,
        typer.Option(help="Grace period in seconds (default: REPIC_STORAGE__GC_GRACE_S)", min=0),
    ] = None,
    orphans: Annotated[
        bool, typer.Option(help="Also list the store for orphans and stale temporaries")
    ] = True,
) -> None:
    """Delete blobs unreferenced for longer than the grace period, orphans and temporaries too.

    Safe while the service runs, on any number of hosts at once.
    """
    from app.core.blob_gc import sweep_blobs
    from app.core.runtime import build_runtime

    runtime = build_runtime(Settings())
    try:
        report = sweep_blobs(runtime, grace_s=grace_s, orphans=orphans)
    finally:
        runtime.engine.dispose()
    console.print(
        f"deleted {report.deleted} blob(s); {report.still_referenced} referenced again; "
        f"{report.orphans_found} orphan(s) found; {report.temporaries_removed} temporary "
        f"file(s) removed; {report.failed} failed; {report.captions_expired} kept caption(s) "
        "expired"
    )
    if report.failed:
        raise typer.Exit(1)
