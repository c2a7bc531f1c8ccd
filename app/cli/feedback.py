"""`repic train export-feedback`: users' corrections as GRPO samples.

It lives with the service's commands (it reads the database and the blob store) and is mounted
under `repic train` when that group loads.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

import typer

from app.cli.data import _runtime, _user_id, console, err


def export_feedback(
    out: Annotated[Path, typer.Option(help="New or empty output folder.")],
    user: Annotated[str | None, typer.Option(help="Export this user's corrections.")] = None,
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user's corrections (needs --admin-token).")
    ] = False,
    admin_token: Annotated[
        str | None, typer.Option(help="REPIC_ADMIN_TOKEN, required with --all.")
    ] = None,
    image_side: Annotated[int, typer.Option(min=112, max=2048, help="Longer side, pixels.")] = 448,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
) -> None:
    """Write corrections as OCT/VLT/ICT samples in `build-data`'s layout; counts per kind."""
    from app.services.feedback_export import feedback_cases
    from training.feedback import export_feedback as write_samples

    if (user is None) == (not all_users):
        err.print("[red]error:[/red] give exactly one of --user NAME and --all")
        raise typer.Exit(2)
    runtime = _runtime()
    if all_users:
        expected = runtime.settings.admin_token.get_secret_value().encode()
        if admin_token is None or not hmac.compare_digest(admin_token.encode(), expected):
            err.print("[red]error:[/red] --all mixes users' data: it needs --admin-token")
            raise typer.Exit(1)
        owners = None
    else:
        owners = [_user_id(runtime, user or "")]
    cases, skipped = feedback_cases(runtime.sessions, runtime.blobs, owners)
    try:
        manifest = write_samples(cases, out, image_side=image_side, seed=seed, skipped=skipped)
    except FileExistsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    counts = ", ".join(f"{kind} {n}" for kind, n in manifest["counts"].items())
    console.print(f"{manifest['samples']} samples from {len(cases)} corrections ({counts})")
    if manifest["skipped"]:
        reasons = ", ".join(f"{why}: {n}" for why, n in manifest["skipped"].items())
        console.print(f"skipped: {reasons}")
