"""`repic users`, `repic keys`, `repic db`: accounts and schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from app.errors import ProblemError
    from app.services.users import UserService

# The database layer and FastAPI (for ProblemError) load inside the commands, so that `repic
# --help` starts at once.

users_cli = typer.Typer(no_args_is_help=True, help="Users and their first API key.")
keys_cli = typer.Typer(no_args_is_help=True, help="API keys.")
db_cli = typer.Typer(no_args_is_help=True, help="Database schema (Alembic).")

console = Console()
err = Console(stderr=True)


def _users() -> UserService:
    from app.services.users import UserService
    from app.settings import Settings
    from store.db import make_engine, make_session_factory

    settings = Settings()
    return UserService(make_session_factory(make_engine(settings.database_url)))


def _fail(exc: ProblemError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.detail}")
    return typer.Exit(code=1)


@users_cli.command("create")
def users_create(name: str) -> None:
    """Create a user and print its first API key (shown once)."""
    from app.errors import ProblemError

    try:
        issued = _users().create_user(name)
    except ProblemError as exc:
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


@keys_cli.command("create")
def keys_create(user: str) -> None:
    """Print a new API key for USER (shown once)."""
    from app.errors import ProblemError

    try:
        issued = _users().create_key(user)
    except ProblemError as exc:
        raise _fail(exc) from exc
    err.print(f"new key {issued.prefix} for {issued.user.name!r}:")
    console.print(issued.plaintext, highlight=False)


@keys_cli.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke the key whose prefix is PREFIX (the 8 characters after `rpk_`)."""
    from app.errors import ProblemError

    try:
        key = _users().revoke_key(prefix)
    except ProblemError as exc:
        raise _fail(exc) from exc
    console.print(f"revoked {key.prefix}")


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (run before the server starts)."""
    from app.migrate import upgrade
    from app.settings import Settings

    upgrade(Settings().database_url, revision)
    err.print(f"database at revision {revision}")
