"""`repic reindex`, `repic caption`, `repic derivatives`: data work on the local database."""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.core.settings import Settings

if TYPE_CHECKING:
    from app.core.runtime import Runtime

# Heavy modules (torch, open_clip, the database layer) are imported inside the commands that
# use them, so `repic --help` and the account commands start at once.

console = Console()
err = Console(stderr=True)


def _runtime() -> Runtime:
    from app.core.runtime import build_runtime

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


def reindex(
    batch: Annotated[int, typer.Option(min=1, max=512, help="Images per forward pass")] = 32,
) -> None:
    """Re-embed every image whose vector is missing or from another embedder."""
    from app.core import wiring
    from model.images import fit_pixel_budget, normalize_image
    from store.db import transaction
    from store.repositories import ConceptRepository, UserRepository

    runtime = _runtime()
    embeddings = wiring.embeddings(runtime)
    embedder_id = embeddings.embedder_id
    budget = runtime.settings.vlm.demo_max_pixels
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
                # From the demonstration image, as an upload embeds (the stored copy fitted
                # to the budget for rows that predate derivatives).
                pil = [
                    fit_pixel_budget(
                        normalize_image(
                            runtime.blobs.get(r.prompt_blob_key or r.blob_key), max_pixels=10**9
                        ).to_pil(),
                        budget,
                    )
                    for r in rows
                ]
                embedded = embeddings.embed_photos(pil)
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


class Style(StrEnum):
    """`model.prompt.PromptStyle`, named here so that `repic --help` needs no image library."""

    REPIC = "repic"
    ZERO_SHOT = "zero_shot"


def caption(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The photo")],
    user: Annotated[str, typer.Option(help="Whose concepts to use")],
    top_k: Annotated[
        int | None,
        typer.Option(min=1, max=8, help="Concepts to retrieve (default REPIC_RETRIEVAL__TOP_K)"),
    ] = None,
    concept_id: Annotated[
        list[int] | None,
        typer.Option(help="Skip retrieval: caption with this concept (repeat for more)"),
    ] = None,
    instruction: Annotated[
        str | None,
        typer.Option(
            help='Replaces "Give a personalized caption of this image."; may be a question'
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, max=1024, help="Longest caption (default REPIC_VLM__MAX_TOKENS)"),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(min=-1, max=1, help="Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE)"),
    ] = None,
    prompt_style: Annotated[
        Style, typer.Option(help="zero_shot for a plain Qwen2.5-VL checkpoint")
    ] = Style.REPIC,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the POST /caption response body")
    ] = False,
) -> None:
    """Caption IMAGE with USER's concepts, in-process (same pipeline as POST /caption)."""
    from app.api.schemas import caption_public
    from app.core import wiring
    from app.services.captioning import CaptionRequest
    from app.services.errors import DomainError
    from app.services.timings import Timings
    from model.images import ImageError
    from model.photos import prepare_query
    from model.prompt import PromptStyle

    start = time.perf_counter()
    runtime = _runtime()
    captions = wiring.captions(runtime)
    owner = _user_id(runtime, user)
    if concept_id:
        _check_concepts(runtime, owner, user, concept_id)
    cfg = runtime.settings
    timings = Timings(runtime.metrics)
    try:
        data = image.read_bytes()
        with timings.stage("decode"):
            query = prepare_query(
                data,
                max_pixels=cfg.upload.max_pixels,
                vlm_max_pixels=cfg.vlm.max_pixels,
                clip_min_side=captions.retrieval.clip_min_side(),
            )
    except ImageError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    request = CaptionRequest.from_settings(
        cfg.retrieval,
        cfg.vlm,
        top_k=top_k,
        min_score=min_score,
        concept_ids=concept_id,
        instruction=instruction,
        max_tokens=max_tokens,
        style=PromptStyle(prompt_style.value),
    )

    async def run() -> None:
        try:
            result = await captions.caption(owner, query, request, timings)
        except DomainError as exc:
            err.print(f"[red]error:[/red] {exc.detail}")
            raise typer.Exit(1) from exc
        finally:
            await runtime.vlm.aclose()
        # The whole command but the interpreter's start: loading the models is part of it.
        timings.ms["total"] = (time.perf_counter() - start) * 1000
        if as_json:
            console.print_json(caption_public(result).model_dump_json())
        else:
            used = ", ".join(f"<{m.concept.name}>" for m in result.used) or "none"
            err.print(f"concepts used: {used}")
            console.print(result.caption, highlight=False)

    asyncio.run(run())


def _check_concepts(runtime: Runtime, owner: int, user: str, concept_ids: list[int]) -> None:
    """Unknown --concept-id values, named with the command that lists the right ones."""
    from store.repositories import ConceptRepository

    with runtime.sessions() as session:
        found = {c.id for c in ConceptRepository(session).get_many(owner, concept_ids)}
    missing = sorted(set(concept_ids) - found)
    if missing:
        err.print(
            f"[red]error:[/red] {user} has no concept with id {', '.join(map(str, missing))}; "
            f"see `repic concepts list --user {user}`."
        )
        raise typer.Exit(1)


def derivatives(
    batch: Annotated[int, typer.Option(min=1, max=512, help="Images per transaction")] = 32,
) -> None:
    """Make the demonstration image and thumbnail of every photo that lacks them (or whose
    demonstration image was made for another REPIC_VLM__DEMO_MAX_PIXELS)."""
    from app.core import wiring
    from model.images import NormalizedImage
    from store.db import transaction
    from store.repositories import ConceptRepository

    runtime = _runtime()
    service = wiring.concepts(runtime)
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
