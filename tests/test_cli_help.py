"""The help of every `repic` command: each option and argument says what it is for, and on/off
flags read as switches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.testing import CliRunner

from app.cli import cli
from app.cli.data import Style
from model.prompt import PromptStyle

runner = CliRunner()


def command_tree() -> Iterator[tuple[list[str], Any]]:
    """(path, command) for every command under `repic`, `eval` and `train` loaded too."""
    root = typer.main.get_command(cli)

    def walk(path: list[str], command: Any, ctx: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if isinstance(command, TyperGroup):
            for name in list(command.commands):
                _, sub, _ = command.resolve_command(ctx, [name])
                yield from walk([*path, name], sub, ctx)

    with root.make_context("repic", ["--help"], resilient_parsing=True) as ctx:
        yield from walk([], root, ctx)


COMMANDS = list(command_tree())


def test_the_tree_holds_every_command() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    for expected in (
        "caption",
        "concepts import",
        "concepts list",
        "concepts export",
        "concepts delete",
        "keys list",
        "users delete",
        "eval grounding",
        "train build-data",
    ):
        assert expected in paths


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"repic {' '.join(path)} {param.name}"
        for path, command in COMMANDS
        for param in command.params
        if isinstance(param, TyperOption | TyperArgument) and not (param.help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "repic")
def test_help_shows_no_bool_value(path: list[str]) -> None:
    result = runner.invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


def test_json_is_a_switch_that_takes_no_value() -> None:
    result = runner.invoke(cli, ["concepts", "list", "--user", "alice", "--json", "true"])
    assert result.exit_code == 2 and "unexpected extra argument(s) (true)" in result.output


def test_prompt_style_choices_are_the_services() -> None:
    assert [s.value for s in Style] == [s.value for s in PromptStyle]
    helped = runner.invoke(cli, ["caption", "--help"], terminal_width=200)
    assert "--prompt-style" in helped.output and "zero_shot" in helped.output


def test_eval_grounding_documents_its_input_format() -> None:
    helped = runner.invoke(cli, ["eval", "grounding", "--help"], terminal_width=200).output
    for field in ('"caption"', '"concepts"', "image", "JSONL"):
        assert field in helped
