"""`repic captions`: a user's kept captions and corrections, from the operator's shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.data import _runtime, _user_id, console, err

if TYPE_CHECKING:
    from app.core.runtime import Runtime

captions_cli = typer.Typer(no_args_is_help=True, help="Kept captions and their corrections.")


@captions_cli.command("list")
def list_captions(
    user: Annotated[str, typer.Option(help="Whose kept captions")],
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many to show")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="How many of the newest to skip")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The user's kept captions, newest first."""
    from app.api.history_schemas import record_public
    from app.core import wiring

    runtime = _runtime()
    records, count = wiring.history(runtime).page(
        _user_id(runtime, user), offset=offset, limit=limit
    )
    rows = [record_public(r) for r in records]
    for row in rows:
        if as_json:
            console.print_json(row.model_dump_json())
            continue
        mark = " [corrected]" if row.feedback is not None else ""
        names = ", ".join(f"<{c.name}>" for c in row.concepts_mentioned) or "-"
        typer.echo(f"{row.id}\t{row.created_at:%Y-%m-%d %H:%M}\t{names}\t{row.caption!r}{mark}")
    if not as_json:
        err.print(f"{len(rows)} of {count} kept caption(s)")


@captions_cli.command("feedback")
def feedback(
    caption_id: Annotated[int, typer.Argument(min=1, help="The kept caption's id")],
    user: Annotated[str, typer.Option(help="Whose kept caption")],
    present: Annotated[
        list[str] | None, typer.Option(help="A concept really in the photo (name or id); repeat")
    ] = None,
    wrong: Annotated[
        list[str] | None, typer.Option(help="A concept named wrongly (name or id); repeat")
    ] = None,
    caption: Annotated[str | None, typer.Option(help="The caption as it should read")] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="Your rating, 1 to 5")] = None,
) -> None:
    """Correct a kept caption (validated as `POST /captions/{id}/feedback` validates it)."""
    from pydantic import ValidationError

    from app.api.history_schemas import FeedbackCreate, record_public
    from app.core import wiring
    from app.services.errors import DomainError
    from app.services.inputs import Correction

    runtime = _runtime()
    owner = _user_id(runtime, user)
    try:
        body = FeedbackCreate(
            present=_ids(runtime, owner, present),
            wrong=_ids(runtime, owner, wrong),
            caption=caption,
            rating=rating,
        )
        row = wiring.history(runtime).feedback(owner, caption_id, Correction(**body.model_dump()))
    except ValidationError as exc:
        err.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    console.print_json(record_public(row).model_dump_json())


def _ids(runtime: Runtime, user_id: int, given: list[str] | None) -> list[int] | None:
    """Concept ids from names (``bo`` or ``<bo>``) or ids; an unknown name stops here."""
    if not given:
        return None
    from app.core.names import name_key
    from store.repositories import ConceptRepository

    ids = []
    with runtime.sessions() as session:
        repo = ConceptRepository(session)
        for item in given:
            if item.isdigit():
                ids.append(int(item))
                continue
            concept = repo.by_name_key(user_id, name_key(item.strip("<>")))
            if concept is None:
                err.print(f"[red]error:[/red] the user has no concept named {item!r}")
                raise typer.Exit(1)
            ids.append(concept.id)
    return ids
