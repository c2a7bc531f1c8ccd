"""`repic concepts`: import, list, export and delete one user's concepts on the local database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from app.cli.data import _progress, _runtime, _user_id, console, err

if TYPE_CHECKING:
    from app.core.runtime import Runtime
    from app.services.concepts import ConceptService
    from model.concept_sources import SourceConcept
    from model.images import NormalizedImage
    from store.models import Concept

# Heavy modules (torch, open_clip, the database layer) are imported inside the commands that
# use them, so `repic --help` and the account commands start at once.

concepts_cli = typer.Typer(no_args_is_help=True, help="One user's concepts, in bulk.")

User = Annotated[str, typer.Option(help="Owner of the concepts")]


def plural(count: int, noun: str) -> str:
    """``1 problem``, ``4 problems``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@concepts_cli.command("import")
def import_concepts(
    path: Annotated[
        Path, typer.Argument(help="A RAP/RePIC database.json, or a folder per concept")
    ],
    user: User,
) -> None:
    """Import concepts; run it again after editing the source to take new photos and texts.

    A concept that exists gets the photos it lacks and the source's info and category. Files
    and concepts that cannot be imported are listed as problems, and the exit status is then 1.
    """
    from model.concept_sources import ConceptSourceError, load_concept_source

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
    from app.core import wiring

    problems = list(loaded.problems)
    service = wiring.concepts(runtime)
    table = Table("concept", "images added", "status")
    added_total = 0
    with _progress() as progress:
        task = progress.add_task("importing", total=len(loaded.concepts))
        for concept in loaded.concepts:
            images = _read_images(runtime, concept, problems)
            status, added = _import_one(runtime, service, owner, concept, images)
            if status.startswith("skipped: "):
                problems.append(f"{concept.name}: {status.removeprefix('skipped: ')}")
            added_total += added
            table.add_row(concept.name, str(added), status)
            progress.advance(task)
    console.print(table)
    for problem in problems:
        err.print(f"[yellow]skipped:[/yellow] {problem}", soft_wrap=True)
    err.print(
        f"{plural(len(loaded.concepts), 'concept')} read, {plural(added_total, 'image')} added, "
        f"{plural(len(problems), 'problem')}"
    )
    if problems:
        raise typer.Exit(1)


def _read_images(
    runtime: Runtime, concept: SourceConcept, problems: list[str]
) -> list[tuple[str, NormalizedImage]]:
    """(sha256 of the file, the photo) of the concept's usable photos, at most the per-concept
    limit; the rest become problems. The file's own hash recognises a photo that `repic
    concepts export` wrote: it is the stored photo, which normalizing again would change."""
    from model.images import ImageError, normalize_image

    limits = runtime.settings.upload
    cap = limits.max_images_per_concept
    if len(concept.images) > cap:
        problems.append(
            f"{concept.name}: {len(concept.images)} photos, but a concept keeps at most {cap} "
            f"(REPIC_UPLOAD__MAX_IMAGES_PER_CONCEPT); imported the first {cap} by file name, "
            f"skipped {', '.join(f.name for f in concept.images[cap:])}"
        )
    images = []
    for file in concept.images[:cap]:
        try:
            data = file.read_bytes()
            photo = normalize_image(
                data,
                max_pixels=limits.max_pixels,
                max_side=limits.store_max_side,
                keep_pixels=True,
            )
            images.append((hashlib.sha256(data).hexdigest(), photo))
        except (OSError, ImageError) as exc:
            problems.append(f"{concept.name}: {file}: {exc}")
    return images


def _import_one(
    runtime: Runtime,
    service: ConceptService,
    owner: int,
    concept: SourceConcept,
    read: list[tuple[str, NormalizedImage]],
) -> tuple[str, int]:
    from app.api.schemas import ConceptUpdate
    from app.core.names import InvalidName, name_key, normalize_name
    from app.services.errors import DomainError
    from app.services.inputs import ConceptPatch
    from store.repositories import ConceptRepository

    if not read:
        return "skipped: no usable image", 0
    images = [photo for _, photo in read]
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
        changes: list[str] = []
        patch = {"info": concept.info, "category": concept.category}
        if concept.display_name is not None:
            patch["display_name"] = concept.display_name
        if any(getattr(existing, field) != value for field, value in patch.items()):
            checked = ConceptUpdate(**patch).model_dump(exclude_unset=True)
            service.update(owner, existing.id, ConceptPatch(checked))
            changes.append("text updated")
        fresh = [p for raw, p in read if raw not in known and p.sha256 not in known]
        if fresh:
            service.add_images(owner, existing.id, fresh)
            changes.append("images added")
        return ", ".join(changes) or "unchanged", len({p.sha256 for p in fresh})
    except DomainError as exc:
        return f"skipped: {exc.detail}", 0


@concepts_cli.command("list")
def list_concepts(
    user: User,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List USER's concepts with their ids (the ids `repic caption --concept-id` takes)."""
    from store.repositories import ConceptRepository

    runtime = _runtime()
    owner = _user_id(runtime, user)
    with runtime.sessions() as session:
        rows = [_summary(c) for c in ConceptRepository(session).all_for_user(owner)]
    if as_json:
        console.print_json(json.dumps({"data": rows, "count": len(rows)}))
        return
    table = Table("id", "name", "display name", "category", "photos", "info")
    for row in rows:
        info = str(row["info"])
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["display_name"] or ""),
            str(row["category"] or ""),
            str(len(row["image_ids"])),  # type: ignore[arg-type]
            info if len(info) <= 60 else info[:59] + "…",
        )
    console.print(table)
    err.print(plural(len(rows), "concept"))


def _summary(concept: Concept) -> dict[str, object]:
    return {
        "id": concept.id,
        "name": concept.name,
        "display_name": concept.display_name,
        "category": concept.category,
        "info": concept.info,
        "image_ids": [img.id for img in concept.images],
    }


_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


@concepts_cli.command("export")
def export_concepts(
    out: Annotated[
        Path, typer.Argument(help="New or empty folder for database.json and the photos")
    ],
    user: User,
) -> None:
    """Write USER's concepts as a RAP/RePIC database.json with the photos beside it.

    `repic concepts import OUT --user NAME` reads it back (names, display names, info,
    categories and photos).
    """
    from store.blobs import BlobError
    from store.repositories import ConceptRepository

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        err.print(f"[red]error:[/red] {out} exists and is not an empty folder")
        raise typer.Exit(2)
    runtime = _runtime()
    owner = _user_id(runtime, user)
    entries: dict[str, dict[str, object]] = {}
    photos = 0
    with runtime.sessions() as session:
        for concept in ConceptRepository(session).all_for_user(owner):
            paths = []
            for img in concept.images:
                relative = f"{concept.name}/{img.id}{_SUFFIX.get(img.mime, '.jpg')}"
                try:
                    data = runtime.blobs.get(img.blob_key)
                except BlobError as exc:
                    err.print(f"[red]error:[/red] cannot read photo {img.id}: {exc}")
                    raise typer.Exit(1) from exc
                (out / concept.name).mkdir(parents=True, exist_ok=True)
                (out / relative).write_bytes(data)
                paths.append(relative)
            photos += len(paths)
            entries[f"<{concept.name}>"] = {
                "name": concept.display_name or concept.name,
                "image": paths,
                "info": concept.info,
                "category": concept.category or "",
            }
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"concept_dict": entries}, ensure_ascii=False, indent=2) + "\n"
    (out / "database.json").write_text(text, encoding="utf-8")
    err.print(
        f"wrote {plural(len(entries), 'concept')} and {plural(photos, 'photo')} to "
        f"{out / 'database.json'}"
    )


@concepts_cli.command("delete")
def delete_concept(
    name: Annotated[str, typer.Argument(help="The concept's name (`<bo>` or `bo`)")],
    user: User,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone")] = False,
) -> None:
    """Delete one of USER's concepts with its photos and vectors."""
    from app.core import wiring
    from app.core.names import InvalidName, name_key, normalize_name
    from app.services.errors import DomainError
    from store.repositories import ConceptRepository

    if not yes:
        err.print("[red]error:[/red] deleting a concept cannot be undone; add --yes to confirm.")
        raise typer.Exit(2)
    try:
        key = name_key(normalize_name(name))
    except InvalidName as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    runtime = _runtime()
    owner = _user_id(runtime, user)
    with runtime.sessions() as session:
        concept = ConceptRepository(session).by_name_key(owner, key)
        found = None if concept is None else (concept.id, concept.name, len(concept.images))
    if found is None:
        err.print(
            f"[red]error:[/red] {user} has no concept named <{name.strip('<>')}>; "
            f"see `repic concepts list --user {user}`."
        )
        raise typer.Exit(1)
    try:
        wiring.concepts(runtime).delete(owner, found[0])
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    console.print(f"deleted <{found[1]}> (id {found[0]}) with {plural(found[2], 'photo')}")
