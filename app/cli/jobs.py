"""`repic worker` and `repic caption-album`: caption jobs from the command line."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.data import _progress, _runtime, _user_id, err

if TYPE_CHECKING:
    from app.core.runtime import Runtime

_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=256, help="Overrides REPIC_JOBS__CONCURRENCY")
    ] = None,
) -> None:
    """Run caption jobs until SIGINT/SIGTERM (as many workers as you like, on one database).

    On PostgreSQL it is a procrastinate worker on the `caption-jobs` queue; on SQLite it polls
    the job tables (REPIC_JOBS__QUEUE chooses otherwise).
    """
    from app.core import wiring
    from app.core.logs import configure_logging

    runtime = _runtime()
    settings = runtime.settings
    if settings.log_format != "inherit":
        configure_logging(settings.log_level, json=settings.log_format == "json")
    if concurrency is not None:
        runtime.settings.jobs.concurrency = concurrency

    async def run() -> None:
        runner = wiring.job_runner(runtime)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        try:
            await runtime.job_queue.run_worker(runner)
        finally:
            await runtime.vlm.aclose()
            runtime.engine.dispose()

    asyncio.run(run())


def caption_album(
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, help="Folder of photos (searched deeply)"),
    ],
    user: Annotated[str, typer.Option(help="Whose concepts to use")],
    output: Annotated[
        Path | None,
        typer.Option(help="Results file, .jsonl or .csv (default DIR/captions.jsonl)"),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(min=1, max=8, help="Concepts to retrieve (default REPIC_RETRIEVAL__TOP_K)"),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, max=1024, help="Longest caption (default REPIC_VLM__MAX_TOKENS)"),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(min=-1, max=1, help="Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE)"),
    ] = None,
    instruction: Annotated[
        str | None,
        typer.Option(
            help='Replaces "Give a personalized caption of this image."; may be a question'
        ),
    ] = None,
) -> None:
    """Caption every photo of DIRECTORY as one job, with a progress bar.

    Resumable: the job id is kept next to the output (OUTPUT.job); run the same command again
    after an interruption and it follows the same job, whose finished photos are not redone.
    Workers (`repic worker`, or an API running jobs) help; this command captions its job too.
    """
    from app.core import wiring
    from app.services.jobs import JobOptions

    out = output or directory / "captions.jsonl"
    if out.suffix not in (".jsonl", ".csv"):
        err.print("[red]error:[/red] --output must end in .jsonl or .csv")
        raise typer.Exit(2)
    state = out.with_name(out.name + ".job")
    runtime = _runtime()
    owner = _user_id(runtime, user)
    service = wiring.jobs(runtime)
    job_id = _resumed(runtime, owner, state)
    if job_id is None:
        photos = sorted(p for p in directory.rglob("*") if p.suffix.lower() in _SUFFIXES)
        if not photos:
            err.print(f"[red]error:[/red] no photos in {directory}")
            raise typer.Exit(1)
        options = JobOptions(
            top_k=top_k, max_tokens=max_tokens, min_score=min_score, instruction=instruction
        )
        payloads = [(str(p.relative_to(directory)), p.read_bytes()) for p in photos]
        job_id = service.submit(owner, payloads, options).job.id
        state.write_text(job_id + "\n")
        err.print(f"job {job_id}: {len(photos)} photos")
    else:
        err.print(f"resuming job {job_id}")
    asyncio.run(_follow(runtime, owner, job_id))
    rows = _all_results(service, owner, job_id)
    _write(out, rows)
    state.unlink(missing_ok=True)
    failed = sum(1 for r in rows if r["status"] == "failed")
    err.print(f"wrote {len(rows)} results to {out} ({failed} failed)")


def _resumed(runtime: Runtime, owner: int, state: Path) -> str | None:
    from store.jobs import JobRepository

    if not state.exists():
        return None
    job_id = state.read_text().strip()
    with runtime.sessions() as session:
        return job_id if JobRepository(session).get(owner, job_id) is not None else None


async def _follow(runtime: Runtime, owner: int, job_id: str) -> None:
    from app.core import wiring
    from app.services.job_runner import running_jobs

    service = wiring.jobs(runtime)
    try:
        async with running_jobs(wiring.job_runner(runtime, name="caption-album"), job_id):
            with _progress() as progress:
                view = await runtime.run(service.view, owner, job_id)
                task = progress.add_task("captioning", total=view.progress.total)
                while True:
                    view = await runtime.run(service.view, owner, job_id)
                    progress.update(task, completed=view.progress.finished)
                    if view.job.status == "done":
                        break
                    await asyncio.sleep(0.5)
    finally:
        await runtime.vlm.aclose()


def _all_results(service: Any, owner: int, job_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page, total = service.results(owner, job_id, offset=len(rows), limit=500)
        rows.extend(page)
        if not page or len(rows) >= total:
            return rows


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        with out.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        return
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["filename", "status", "caption", "concepts_used", "concepts_mentioned", "problem"]
        )
        for row in rows:
            cap = row.get("caption") or {}
            writer.writerow(
                [
                    row["filename"],
                    row["status"],
                    cap.get("caption", ""),
                    " ".join(c["name"] for c in cap.get("concepts_used", [])),
                    " ".join(c["name"] for c in cap.get("concepts_mentioned", [])),
                    (row.get("problem") or {}).get("detail", ""),
                ]
            )
