"""`repic`: the command line of the service."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from app.cli.accounts import db_cli, keys_cli, users_cli
from app.cli.captions import captions_cli
from app.cli.concepts import concepts_cli
from app.cli.data import caption, derivatives, reindex
from app.cli.dev import dev_cli
from app.cli.jobs import caption_album, worker
from app.cli.storage import gc

# `repic eval` and `repic train` pull in httpx, numpy and the training stack: they are listed in
# the help from this table and imported only when one of them runs.
_LAZY = {
    "eval": ("evaluation.cli", "eval_app", "Personal grounding and retrieval evaluation."),
    "train": ("training.cli", "train_app", "RePIC post-training (GRPO) recipe."),
}

# Service commands mounted into a lazy group when it loads (they read the database, which the
# training package itself never touches).
_LAZY_EXTRAS = {"train": {"export-feedback": ("app.cli.feedback", "export_feedback")}}


def plain_switches(command: Any, ctx: Any) -> None:
    """Show on/off flags (``--json``, ``--yes``, ``--help``) without a value in the help of
    ``command`` and every command under it: typer labels them ``<bool>``, which reads as if
    ``--json true`` were the way to write them. They stay switches (no value)."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_switches(sub, ctx)


class _LazyGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, _, text) in _LAZY.items():
            self.commands.setdefault(name, TyperCommand(name=name, help=text))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in _LAZY and not isinstance(self.commands[args[0]], TyperGroup):
            module, attr, text = _LAZY[args[0]]
            group = typer.main.get_command(getattr(importlib.import_module(module), attr))
            group.name, group.help = args[0], text
            assert isinstance(group, TyperGroup)
            for command_name, (extra_module, extra_attr) in _LAZY_EXTRAS.get(args[0], {}).items():
                single = typer.Typer()
                single.command()(getattr(importlib.import_module(extra_module), extra_attr))
                group.add_command(typer.main.get_command(single), command_name)
            self.commands[args[0]] = group
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            plain_switches(command, ctx)
        return name, command, rest

    def format_help(self, ctx: Any, formatter: Any) -> None:
        plain_switches(self, ctx)
        super().format_help(ctx, formatter)


cli = typer.Typer(
    cls=_LazyGroup, no_args_is_help=True, help="RePIC personalized captioning service."
)
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(db_cli, name="db")
cli.add_typer(concepts_cli, name="concepts")
cli.add_typer(captions_cli, name="captions")
cli.add_typer(dev_cli, name="dev")
cli.command("reindex")(reindex)
cli.command("caption")(caption)
cli.command("derivatives")(derivatives)
cli.command("worker")(worker)
cli.command("caption-album")(caption_album)
cli.command("gc")(gc)


def main() -> None:
    cli()
