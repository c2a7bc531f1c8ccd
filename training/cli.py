"""`repic train`: build GRPO data, run GRPO, merge the adapter into a servable checkpoint.

The heavy libraries (torch, transformers, TRL) load inside the commands that need them, so
``build-data`` and ``--help`` start fast.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from training.concepts import ConceptDatabaseError, load_concepts
from training.data import DATA_FILE, PREVIEW_FILE, DataConfig, build_dataset
from training.prompts import PromptStyle

train_app = typer.Typer(no_args_is_help=True, help="RePIC post-training: data, GRPO, merge.")


@train_app.command("build-data")
def build_data(
    database: Annotated[
        Path, typer.Option(help="A RAP/RePIC database.json, or a folder of concept folders.")
    ],
    out: Annotated[Path, typer.Option(help="New or empty output folder.")],
    samples: Annotated[int, typer.Option(min=1, help="Samples to write.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    oct_share: Annotated[float, typer.Option("--oct", min=0.0, help="Relative share.")] = 1.0,
    vlt_share: Annotated[float, typer.Option("--vlt", min=0.0, help="Relative share.")] = 1.0,
    ict_share: Annotated[float, typer.Option("--ict", min=0.0, help="Relative share.")] = 1.0,
    multi_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of ICT samples that are collages.")
    ] = 0.3,
    max_collage: Annotated[
        int, typer.Option(min=2, max=4, help="Most concepts in one collage.")
    ] = 2,
    image_side: Annotated[int, typer.Option(help="Longer side of every image, pixels.")] = 448,
    prompt_style: Annotated[
        PromptStyle,
        typer.Option(
            help="reference: the paper's training prompt; inference: the service's prompt."
        ),
    ] = PromptStyle.REFERENCE,
) -> None:
    """Write OCT/VLT/ICT samples (JSONL + images + manifest + preview) for GRPO."""
    started = time.perf_counter()
    try:
        concepts = load_concepts(database)
        config = DataConfig(
            samples=samples,
            seed=seed,
            oct_share=oct_share,
            vlt_share=vlt_share,
            ict_share=ict_share,
            multi_share=multi_share,
            max_collage=max_collage,
            image_side=image_side,
            prompt_style=prompt_style,
        )
        manifest = build_dataset(concepts, out, config)
    except (ConceptDatabaseError, ValueError, FileExistsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(
        f"{manifest['samples']} samples from {manifest['concepts']} concepts "
        f"{manifest['counts']} in {time.perf_counter() - started:.1f} s: "
        f"{out / DATA_FILE}, preview {out / PREVIEW_FILE}"
    )


@train_app.command("grpo")
def grpo(config: Annotated[Path, typer.Argument(help="Run file (TOML).")]) -> None:
    """Train LoRA adapters with GRPO as the TOML file says (defaults: the paper's recipe)."""
    from training.config import RunConfigError, load_run_config

    try:
        run = load_run_config(config)
    except RunConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    from training.grpo import train_grpo

    _log_to_console()
    out = train_grpo(run)
    typer.echo(f"adapter and processor saved in {out}")


@train_app.command("merge")
def merge(
    adapter: Annotated[Path, typer.Option(help="Output folder of `repic train grpo`.")],
    out: Annotated[Path, typer.Option(help="New or empty folder for the merged model.")],
    base: Annotated[
        str | None, typer.Option(help="Base model; default: the one the adapter was trained on.")
    ] = None,
) -> None:
    """Merge the LoRA adapter into its base model; save weights, processor and chat template."""
    from training.merge import merge_adapter

    _log_to_console()
    try:
        merged = merge_adapter(adapter, out, base=base)
    except (FileExistsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"merged model saved in {merged}")


def _log_to_console() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


if __name__ == "__main__":
    train_app()
