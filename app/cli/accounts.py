"""`repic users`, `repic keys`, `repic db`: accounts and schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from app.services.errors import DomainError
    from app.services.user_data import UserDataService
    from app.services.users import UserService

# The database layer and the services load inside the commands, so that `repic
# --help` starts at once.

users_cli = typer.Typer(no_args_is_help=True, help="Users and their first API key.")
keys_cli = typer.Typer(no_args_is_help=True, help="API keys.")
db_cli = typer.Typer(no_args_is_help=True, help="Database schema (Alembic).")

console = Console()
err = Console(stderr=True)


def _users() -> UserService:
    from app.core.settings import Settings
    from app.services.users import UserService
    from store.db import make_engine, make_session_factory

    settings = Settings()
    return UserService(
        make_session_factory(make_engine(settings.database_url)),
        max_active_keys=settings.quota.api_keys,
    )


def _user_data() -> UserDataService:
    from app.core import wiring
    from app.core.runtime import build_runtime
    from app.core.settings import Settings

    return wiring.user_data(build_runtime(Settings()))


def _fail(exc: DomainError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.detail}")
    return typer.Exit(code=1)


@users_cli.command("create")
def users_create(name: Annotated[str, typer.Argument(help="The new user's name")]) -> None:
    """Create a user and print its first API key (shown once)."""
    from app.services.errors import DomainError

    try:
        issued = _users().create_user(name)
    except DomainError as exc:
        raise _fail(exc) from exc
    err.print(f"created user {issued.user.name!r} (id {issued.user.id}); API key:")
    console.print(issued.plaintext, highlight=False)


@users_cli.command("list")
def users_list() -> None:
    """List users."""
    table = Table("id", "name", "created")
    for user in _users().list_users():
        table.add_row(str(user.id), user.name, user.created_at.isoformat(timespec="seconds"))
    console.print(table)


@users_cli.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="The user to delete")],
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Delete a user with all their keys, concepts, photos, vectors and index."""
    if not yes:
        err.print("[red]error:[/red] deleting a user cannot be undone; add --yes to confirm.")
        raise typer.Exit(code=2)
    from app.services.errors import DomainError

    try:
        deleted = _user_data().delete(name)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(
        f"deleted user {deleted.name!r} with {deleted.concepts} concepts and "
        f"{deleted.photos} photos"
    )


@users_cli.command("export")
def users_export(
    name: Annotated[str, typer.Argument(help="The user to export")],
    output: Annotated[Path, typer.Argument(help="The zip file to write")],
) -> None:
    """Write a zip of a user's data (concepts.json and photos/) to OUTPUT."""
    from app.services.errors import DomainError

    try:
        data = _user_data().export(name)
    except DomainError as exc:
        raise _fail(exc) from exc
    output.write_bytes(data)
    console.print(f"wrote {output} ({len(data):,} bytes)")


@keys_cli.command("create")
def keys_create(
    user: Annotated[str, typer.Argument(help="The user to issue a key for")],
) -> None:
    """Print a new API key for USER (shown once)."""
    from app.services.errors import DomainError

    try:
        issued = _users().create_key(user)
    except DomainError as exc:
        raise _fail(exc) from exc
    err.print(f"new key {issued.prefix} for {issued.user.name!r}:")
    console.print(issued.plaintext, highlight=False)


@keys_cli.command("list")
def keys_list(user: Annotated[str, typer.Argument(help="The user whose keys to list")]) -> None:
    """List USER's API keys by prefix (only a hash of each key is stored)."""
    from app.services.errors import DomainError

    try:
        keys = _users().keys_of(user)
    except DomainError as exc:
        raise _fail(exc) from exc
    table = Table("prefix", "created", "revoked")
    for key in keys:
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(key.prefix, key.created_at.isoformat(timespec="seconds"), revoked)
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `repic keys list` shows")],
) -> None:
    """Revoke the key whose prefix is PREFIX (the 8 characters after `rpk_`)."""
    from app.services.errors import DomainError

    try:
        key = _users().revoke_key(prefix)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"revoked {key.prefix}")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to reach")] = "head",
) -> None:
    """Apply migrations (run before the server starts)."""
    from app.core.migrate import upgrade
    from app.core.settings import Settings

    upgrade(Settings().database_url, revision)
    err.print(f"database at revision {revision}")
