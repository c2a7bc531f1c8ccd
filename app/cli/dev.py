"""`repic dev`: offline demo models and the README configuration table."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from app.core.settings import Settings

dev_cli = typer.Typer(no_args_is_help=True, help="Developer tools.")
console = Console()
err = Console(stderr=True)


@dev_cli.command("tiny-models")
def tiny_models(
    out: Annotated[Path, typer.Argument(help="Folder to write the models into")],
    env_file: Annotated[
        Path | None, typer.Option(help="Also write `export` lines for a shell to source here")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Add REPIC_DATA_DIR and a SQLite database under it")
    ] = None,
) -> None:
    """Write a tiny RANDOM-WEIGHT CLIP and Qwen2.5-VL and print the REPIC_* settings using them.

    For trying the whole pipeline offline: captions are random text, retrieval is not semantic.
    """
    from model.tiny.clip import build_tiny_clip
    from model.tiny.qwen import build_tiny_qwen25vl

    out = out.resolve()
    clip = build_tiny_clip(out / "clip")
    qwen = build_tiny_qwen25vl(out / "qwen25vl")
    lines = [
        f"REPIC_EMBEDDER__MODEL={clip.config_path}",
        f"REPIC_EMBEDDER__PRETRAINED={clip.checkpoint_path}",
        "REPIC_VLM__BACKEND=transformers",
        f"REPIC_VLM__MODEL={qwen}",
        "REPIC_VLM__MAX_TOKENS=32",
        # Random CLIP features make every pair of photos look alike; no floor is meaningful.
        "REPIC_RETRIEVAL__MIN_SCORE=-1",
    ]
    if data_dir is not None:
        data = data_dir.resolve()
        lines += [f"REPIC_DATA_DIR={data}", f"REPIC_DATABASE_URL=sqlite:///{data / 'repic.db'}"]
    exports = [
        f"export {line.split('=', 1)[0]}={shlex.quote(line.split('=', 1)[1])}" for line in lines
    ]
    if env_file is not None:
        env_file.write_text("\n".join(exports) + "\n", encoding="utf-8")
    err.print("random-weight demo models written; use these settings:")
    for line in exports:
        console.print(line, highlight=False, soft_wrap=True)


def settings_rows(
    model: type[BaseModel] = Settings, prefix: str = "REPIC_"
) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every leaf setting, nested groups joined by `__`."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += settings_rows(annotation, f"{prefix}{name.upper()}__")
            continue
        default: Any = field.get_default(call_default_factory=True)
        if hasattr(default, "get_secret_value"):
            default = "(placeholder; refused outside development)"
        elif hasattr(default, "value"):
            default = default.value
        rows.append((f"{prefix}{name.upper()}", f"`{default}`", field.description or ""))
    return rows


def settings_table() -> str:
    """The README's configuration table, in Markdown."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    lines += [f"| `{v}` | {d} | {m} |" for v, d, m in settings_rows()]
    return "\n".join(lines) + "\n"


@dev_cli.command("settings-table")
def print_settings_table() -> None:
    """Print the configuration table that the README embeds."""
    print(settings_table(), end="")


def openapi_document() -> str:
    """The service's OpenAPI document as committed in `clients/openapi.json`."""
    from app.main import create_app  # the app (and torch) only for this command

    spec = create_app(Settings(_env_file=None)).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


@dev_cli.command("openapi")
def write_openapi(
    out: Annotated[Path | None, typer.Argument(help="File to write (default: stdout)")] = None,
) -> None:
    """Write the OpenAPI document that the SDKs in `clients/` are generated from."""
    text = openapi_document()
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}")
