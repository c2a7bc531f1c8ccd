"""`repic`: the command line of the service."""

from __future__ import annotations

import typer

from app.cli.accounts import db_cli, keys_cli, users_cli
from app.cli.data import caption, concepts_cli, derivatives, reindex
from app.cli.dev import dev_cli
from app.cli.jobs import caption_album, worker
from app.cli.storage import gc

cli = typer.Typer(no_args_is_help=True, help="RePIC personalized captioning service.")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(db_cli, name="db")
cli.add_typer(concepts_cli, name="concepts")
cli.add_typer(dev_cli, name="dev")
cli.command("reindex")(reindex)
cli.command("caption")(caption)
cli.command("derivatives")(derivatives)
cli.command("worker")(worker)
cli.command("caption-album")(caption_album)
cli.command("gc")(gc)


def _mount_optional() -> None:
    from evaluation.cli import eval_app
    from training.cli import train_app

    cli.add_typer(eval_app, name="eval", help="Personal grounding and retrieval evaluation.")
    cli.add_typer(train_app, name="train", help="RePIC post-training (GRPO) recipe.")


_mount_optional()


def main() -> None:
    cli()
