"""``repic eval``: grounding scores of result files, and end-to-end runs against a server."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evaluation.client import ServiceClient, ServiceError
from evaluation.database import DatabaseError, ground_truth_pool, load_database
from evaluation.dataset import DatasetError, load_dataset
from evaluation.instructions import InstructionSet, instructions_for
from evaluation.results import ResultsFile, ResultsFileError, read_results
from evaluation.runner import Mode, ResultsLog, pending_jobs, run_dataset
from evaluation.summary import ModeSummary, summarise
from model.grounding_scores import GroundingSample, GroundingScores, Matcher, score_grounding

eval_app = typer.Typer(
    help="Evaluate personalized captions: grounding scores and end-to-end runs.",
    no_args_is_help=True,
)
_stderr = Console(stderr=True)
T = TypeVar("T")


@eval_app.command()
def grounding(
    results: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Result files: our JSONL, or a RePIC/RAP reference JSON list (auto-detected).",
        ),
    ],
    matcher: Annotated[
        Matcher,
        typer.Option(help="robust: phrase matcher with display names; official: the paper's."),
    ] = Matcher.ROBUST,
    case_sensitive: Annotated[
        bool,
        typer.Option(
            "--case-sensitive", help="Official matcher without lower-casing (two-concept script)."
        ),
    ] = False,
    database: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="database.json giving display names."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    lines: Annotated[
        bool,
        typer.Option(
            "--lines",
            help="Print one line per file (and mode) as the paper's evaluation scripts do.",
        ),
    ] = False,
) -> None:
    """Personal grounding precision, recall and F1 of each result file (and mode).

    Input, detected from the content. Our JSONL (what `repic eval run` writes): one object
    per line with "image" (a path or id), "concepts" (a list of the ground-truth names, such
    as "<bo>" or "thao") and "caption", optionally "mode" (each mode is scored apart). Or a
    RePIC/RAP reference file: one JSON list whose items are 4-item lists: image path, list
    of concept names, caption, question (the question may be absent).

    With --matcher official (and --case-sensitive for two-concept files) the figures are the
    ones the paper's evaluation script prints for the same file; --lines prints them its way.
    """
    if case_sensitive and matcher is not Matcher.OFFICIAL:
        raise typer.BadParameter(
            "only applies to --matcher official", param_hint="--case-sensitive"
        )
    concepts = _fail_on(DatabaseError, partial(load_database, database)) if database else []
    rows: list[tuple[ResultsFile, str | None, GroundingScores]] = []
    for path in results:
        parsed = _fail_on(ResultsFileError, partial(read_results, path))
        pool = ground_truth_pool((c for r in parsed.records for c in r.concepts), concepts)
        for mode in parsed.modes() or [None]:
            samples = [
                GroundingSample(r.caption, r.written) for r in parsed.records if r.mode == mode
            ]
            scores = score_grounding(
                samples, matcher=matcher, case_sensitive=case_sensitive, pool=pool
            )
            rows.append((parsed, mode, scores))
    if as_json:
        payload = {
            "matcher": str(matcher),
            "case_sensitive": case_sensitive,
            "results": [
                {"file": str(f.path), "format": str(f.format), "mode": mode, **s.as_dict()}
                for f, mode, s in rows
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if lines:
        for parsed, mode, s in rows:
            name = parsed.path.name if mode is None else f"{parsed.path.name} [{mode}]"
            typer.echo(paper_line(name, s))
        return
    table = Table(title=f"Personal grounding ({matcher} matcher)")
    for column in ("File", "Mode", "P %", "R %", "F1 %", "Correct", "MISS", "Empty", "Slots"):
        table.add_column(column, justify="left" if column in ("File", "Mode") else "right")
    for parsed, mode, s in rows:
        table.add_row(
            parsed.path.name,
            mode or "-",
            *_percents(s.precision, s.recall, s.f1),
            *(str(n) for n in (s.correct, s.miss, s.empty, s.slots)),
        )
    _print_table(table)


@eval_app.command()
def run(
    dataset: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="Folder with database.json and queries.json."
        ),
    ],
    server: Annotated[str, typer.Option(help="Base URL of the service, e.g. http://host:8000.")],
    key: Annotated[str, typer.Option(envvar="REPIC_API_KEY", help="API key of the user to use.")],
    out: Annotated[
        Path, typer.Option(dir_okay=False, help="Results JSONL; an existing one is resumed.")
    ] = Path("results.jsonl"),
    top_k: Annotated[int, typer.Option(min=1, help="Concepts retrieved per query image.")] = 2,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for one answer.")] = 300,
    instructions: Annotated[
        InstructionSet,
        typer.Option(
            help="Caption instructions, rotated over the queries as the paper's scripts do: "
            "single (4, single-concept script), multi (3, two/four-concept scripts), auto "
            "(single when every query shows one concept), fixed (the service's default only).",
        ),
    ] = InstructionSet.AUTO,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Caption a labelled dataset through the HTTP API (retrieval and skip-retrieval) and score it.

    Creates the dataset's concepts for the key's user; an existing --out file is resumed.
    """
    data = _fail_on(DatasetError, partial(load_dataset, dataset))
    log = _fail_on(ResultsFileError, partial(ResultsLog, out))
    if log.dropped_partial_line:
        typer.echo(f"Removed an unfinished last line from {out}.", err=True)
    total = 2 * len(data.queries)
    chosen = instructions_for(instructions, [len(q.concepts) for q in data.queries])
    rotation = None if instructions is InstructionSet.FIXED else chosen
    failure: ServiceError | None = None
    with (
        httpx.Client(base_url=server, timeout=timeout) as http,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr,
        ) as progress,
    ):
        pending = len(pending_jobs(data, log))
        concepts_task = progress.add_task("concepts", total=len(data.concepts) if pending else 0)
        captions_task = progress.add_task("captions", total=total, completed=total - pending)
        try:
            run_dataset(
                data,
                ServiceClient(http, key),
                log,
                top_k=top_k,
                instructions=rotation,
                on_concept=lambda: progress.advance(concepts_task),
                on_caption=lambda: progress.advance(captions_task),
            )
        except ServiceError as exc:
            failure = exc
    if failure is not None:
        typer.echo(f"error: {failure}", err=True)
        typer.echo(
            f"{total - len(pending_jobs(data, log))} of {total} captions are saved in {out}; "
            "run again to resume.",
            err=True,
        )
        raise typer.Exit(1)
    wanted = {(q.image, mode) for q in data.queries for mode in Mode}
    summaries = summarise([r for r in log.rows if r.key in wanted], data.concepts)
    if as_json:
        typer.echo(json.dumps({"results": str(out), "modes": [s.as_dict() for s in summaries]}))
        return
    _print_table(_summary_table(summaries, out, top_k))


def paper_line(name: str, scores: GroundingScores) -> str:
    """One result line in the format (and the one-decimal rounding) of the paper's scripts."""
    p, r, f1 = (100 * v for v in (scores.precision, scores.recall, scores.f1))
    return f"file: {name:<60}  metric (P/R/F1): {p:5.1f} / {r:5.1f} / {f1:5.1f}"


def _summary_table(summaries: Sequence[ModeSummary], out: Path, top_k: int) -> Table:
    table = Table(title=f"{out.name}: robust matcher (F1 official: the paper's)")
    columns = ("Mode", "Images", "P %", "R %", "F1 %", "F1 official %", f"Recall@{top_k} %")
    for column in (*columns, "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "Mode" else "right")
    for s in summaries:
        table.add_row(
            str(s.mode),
            str(s.robust.images),
            *_percents(s.robust.precision, s.robust.recall, s.robust.f1, s.official.f1),
            *_percents(s.recall_at_k),
            *(f"{v:.0f}" for v in s.latency_ms.values()),
        )
    return table


def _print_table(table: Table) -> None:
    """Print ``table``; when stdout is not a terminal (a log, a pipe), never wrap its cells."""
    console = Console()
    if not console.is_terminal:
        wide = console.options.update(max_width=10_000)
        console = Console(width=max(console.width, console.measure(table, options=wide).maximum))
    console.print(table)


def _percents(*values: float) -> list[str]:
    return [f"{100 * v:.2f}" for v in values]


def _fail_on(error: type[Exception], action: Callable[[], T]) -> T:
    """Run ``action``; an expected ``error`` becomes a one-line message and exit status 1."""
    try:
        return action()
    except error as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
