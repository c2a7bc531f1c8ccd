"""`repic concepts import`, `repic reindex`, `repic caption`: data work on the local database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.settings import Settings

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.services.concepts import ConceptService
    from model.concept_sources import SourceConcept
    from model.images import NormalizedImage

# Heavy modules (torch, open_clip, the database layer) are imported inside the commands that
# use them, so `repic --help` and the account commands start at once.

concepts_cli = typer.Typer(no_args_is_help=True, help="Bulk work on concepts.")
console = Console()
err = Console(stderr=True)


def _runtime() -> Runtime:
    from app.runtime import build_runtime

    return build_runtime(Settings())


def _user_id(runtime: Runtime, name: str) -> int:
    from store.repositories import UserRepository

    with runtime.sessions() as session:
        user = UserRepository(session).by_name(name)
    if user is None:
        err.print(f"[red]error:[/red] no user named {name!r}; create it with `repic users create`.")
        raise typer.Exit(1)
    return user.id


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@concepts_cli.command("import")
def import_concepts(
    path: Annotated[
        Path, typer.Argument(help="A RAP/RePIC database.json, or a folder per concept")
    ],
    user: Annotated[str, typer.Option(help="Owner of the imported concepts")],
) -> None:
    """Import concepts (idempotent); bad files are reported and skipped."""
    from app.services.concepts import ConceptService
    from model.concept_sources import ConceptSourceError, load_concept_source
    from model.images import ImageError, normalize_image

    runtime = _runtime()
    owner = _user_id(runtime, user)
    try:
        loaded = load_concept_source(path, strict=False)
    except ConceptSourceError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if not loaded.concepts and not loaded.problems:
        err.print(f"nothing to import: {path} holds no concepts")
        return
    problems = list(loaded.problems)
    service = ConceptService(runtime)
    limits = runtime.settings.upload
    table = Table("concept", "images added", "status")
    added_total = 0
    with _progress() as progress:
        task = progress.add_task("importing", total=len(loaded.concepts))
        for concept in loaded.concepts:
            images = []
            for file in concept.images[: limits.max_images_per_concept]:
                try:
                    images.append(
                        normalize_image(
                            file.read_bytes(),
                            max_pixels=limits.max_pixels,
                            max_side=limits.store_max_side,
                            keep_pixels=True,
                        )
                    )
                except (OSError, ImageError) as exc:
                    problems.append(f"{concept.name}: {file}: {exc}")
            status, added = _import_one(runtime, service, owner, concept, images)
            added_total += added
            table.add_row(concept.name, str(added), status)
            progress.advance(task)
    console.print(table)
    for problem in problems:
        err.print(f"[yellow]skipped:[/yellow] {problem}", soft_wrap=True)
    err.print(
        f"{len(loaded.concepts)} concepts read, {added_total} images added, "
        f"{len(problems)} problems"
    )


def _import_one(
    runtime: Runtime,
    service: ConceptService,
    owner: int,
    concept: SourceConcept,
    images: list[NormalizedImage],
) -> tuple[str, int]:
    from app.names import InvalidName, name_key, normalize_name
    from app.services.errors import DomainError
    from store.repositories import ConceptRepository

    if not images:
        return "skipped: no usable image", 0
    try:
        key = name_key(normalize_name(concept.name))
    except InvalidName as exc:
        return f"skipped: {exc}", 0
    with runtime.sessions() as session:
        existing = ConceptRepository(session).by_name_key(owner, key)
        known = {img.sha256 for img in existing.images} if existing else set()
    try:
        if existing is None:
            created = service.create(
                owner,
                name=concept.name,
                info=concept.info,
                category=concept.category,
                images=images,
                display_name=concept.display_name,
            )
            return "created", len(created.images)
        fresh = [img for img in images if img.sha256 not in known]
        if not fresh:
            return "unchanged", 0
        service.add_images(owner, existing.id, fresh)
        return "images added", len({img.sha256 for img in fresh})
    except DomainError as exc:
        return f"skipped: {exc.detail}", 0


def reindex(
    batch: Annotated[int, typer.Option(min=1, max=512, help="Images per forward pass")] = 32,
) -> None:
    """Re-embed every image whose vector is missing or from another embedder."""
    from model.images import normalize_image
    from store.db import transaction
    from store.repositories import ConceptRepository, UserRepository

    runtime = _runtime()
    vectors = runtime.vectors
    embedder_id = vectors.embedder_id
    with runtime.sessions() as session:
        todo = len(ConceptRepository(session).images_needing_embedding(embedder_id, limit=10**9))
    users: set[int] = set()
    with _progress() as progress:
        task = progress.add_task(f"embedding with {embedder_id}", total=todo)
        while True:
            with transaction(runtime.sessions) as session:
                repo = ConceptRepository(session)
                rows = repo.images_needing_embedding(embedder_id, limit=batch)
                if not rows:
                    break
                pil = [
                    normalize_image(runtime.blobs.get(r.blob_key), max_pixels=10**9).to_pil()
                    for r in rows
                ]
                embedded = vectors.embed(pil)
                for row, vec in zip(rows, embedded, strict=True):
                    row.embedding = vec.astype("<f4").tobytes()
                    row.embedding_dim = int(vec.shape[0])
                    row.embedder_id = embedder_id
                    users.add(row.user_id)
                user_repo = UserRepository(session)
                for user_id in {r.user_id for r in rows}:
                    user_repo.bump_index_version(user_id)
            progress.advance(task, len(rows))
    err.print(f"re-embedded {todo} images of {len(users)} users with {embedder_id}")


def caption(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    user: Annotated[str, typer.Option(help="Whose concepts to use")],
    top_k: Annotated[int | None, typer.Option(min=1, max=8)] = None,
    concept_id: Annotated[list[int] | None, typer.Option(help="Skip retrieval")] = None,
    instruction: Annotated[str | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, max=1024)] = None,
    min_score: Annotated[float | None, typer.Option(min=-1, max=1)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Caption IMAGE with USER's concepts, in-process (same pipeline as POST /caption)."""
    from app.schemas import caption_public
    from app.services.captioning import CaptionRequest, CaptionService
    from app.services.errors import DomainError
    from app.services.retrieval import RetrievalService
    from app.services.timings import Timings
    from model.images import ImageError
    from model.photos import prepare_query

    runtime = _runtime()
    owner = _user_id(runtime, user)
    cfg = runtime.settings
    try:
        query = prepare_query(
            image.read_bytes(),
            max_pixels=cfg.upload.max_pixels,
            vlm_max_pixels=cfg.vlm.max_pixels,
            clip_min_side=RetrievalService(runtime).clip_min_side(),
        )
    except ImageError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    request = CaptionRequest.from_settings(
        cfg,
        top_k=top_k,
        min_score=min_score,
        concept_ids=concept_id,
        instruction=instruction,
        max_tokens=max_tokens,
    )

    async def run() -> None:
        try:
            result = await CaptionService(runtime).caption(
                owner, query, request, Timings(runtime.metrics)
            )
        except DomainError as exc:
            err.print(f"[red]error:[/red] {exc.detail}")
            raise typer.Exit(1) from exc
        finally:
            await runtime.vlm.aclose()
        if as_json:
            console.print_json(caption_public(result).model_dump_json())
        else:
            used = ", ".join(f"<{m.concept.name}>" for m in result.used) or "none"
            err.print(f"concepts used: {used}")
            console.print(result.caption, highlight=False)

    asyncio.run(run())


def derivatives(
    batch: Annotated[int, typer.Option(min=1, max=512, help="Images per transaction")] = 32,
) -> None:
    """Make the demonstration image and thumbnail of every photo that lacks them (or whose
    demonstration image was made for another REPIC_VLM__DEMO_MAX_PIXELS)."""
    from app.services.concepts import ConceptService
    from model.images import NormalizedImage
    from store.db import transaction
    from store.repositories import ConceptRepository

    runtime = _runtime()
    service = ConceptService(runtime)
    budget = runtime.settings.vlm.demo_max_pixels
    done, last_id = 0, 0
    with _progress() as progress:
        task = progress.add_task("making derivatives", total=None)
        while True:
            with transaction(runtime.sessions) as session:
                rows = ConceptRepository(session).images_needing_derivatives(
                    budget, after_id=last_id, limit=batch
                )
                if not rows:
                    break
                for row in rows:
                    photo = NormalizedImage(runtime.blobs.get(row.blob_key), row.width, row.height)
                    service.store_derivatives(photo, row.blob_key).apply(row)
                last_id = rows[-1].id
            done += len(rows)
            progress.advance(task, len(rows))
    err.print(f"made derivatives of {done} images")
