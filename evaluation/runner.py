"""End-to-end evaluation runs through the public HTTP API.

A run (``repic eval run DATASET``) creates every concept of the dataset's ``database.json`` for
the API key's user, then captions each query image twice: in ``retrieval`` mode (the service
retrieves the top-k concepts itself) and in ``skip_retrieval`` mode (the ground-truth concepts
are named with ``concept_ids``, the paper's oracle setting). Each answer is appended at once as
one line of a JSONL results file; running again with the same file resumes, skipping the
(image, mode) pairs it already holds. To start over, delete the file.

As in the paper's caption scripts, the named concepts are sent in the order of the dataset's
``database.json`` (not the order a query lists them), and the ``i``-th query of
``queries.json`` gets the ``i``-th instruction of the rotation (see
:mod:`evaluation.instructions`) in both modes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from evaluation.client import ConceptId, ServiceClient
from evaluation.dataset import Dataset, Query
from evaluation.instructions import rotated
from evaluation.results import ResultsFileError, parse_jsonl_record


class Mode(StrEnum):
    RETRIEVAL = "retrieval"
    SKIP_RETRIEVAL = "skip_retrieval"


@dataclass(frozen=True)
class RunRow:
    """One line of the results file: one (image, mode) caption with what the service said."""

    image: str
    mode: Mode
    concepts: tuple[str, ...]
    caption: str
    latency_ms: float
    concepts_used: list[dict[str, Any]] = field(default_factory=list)
    concepts_mentioned: list[Any] = field(default_factory=list)
    model: str | None = None
    timings_ms: dict[str, Any] = field(default_factory=dict)
    instruction: str | None = None

    @property
    def key(self) -> tuple[str, Mode]:
        return self.image, self.mode

    def used_names(self) -> list[str]:
        """Names of the concepts the service put in the prompt, in rank order."""
        return [str(c.get("name", "")) for c in self.concepts_used if isinstance(c, dict)]


def parse_run_row(path: Path, line_no: int, line: str) -> RunRow:
    """A results-file line as a :class:`RunRow`; raises :class:`ResultsFileError`."""
    record = parse_jsonl_record(path, line_no, line)
    row = json.loads(line)
    where = f"line {line_no}"
    if record.mode not in tuple(Mode):
        raise ResultsFileError(path, where, f"'mode' must be one of {', '.join(Mode)}")
    latency = row.get("latency_ms")
    used = row.get("concepts_used", [])
    if not isinstance(latency, int | float) or not isinstance(used, list):
        raise ResultsFileError(
            path, where, "needs a number 'latency_ms' and a list 'concepts_used'"
        )
    return RunRow(
        image=record.image,
        mode=Mode(record.mode),
        concepts=record.concepts,
        caption=record.caption,
        latency_ms=float(latency),
        concepts_used=used,
        concepts_mentioned=list(row.get("concepts_mentioned") or []),
        model=row.get("model"),
        timings_ms=dict(row.get("timings_ms") or {}),
        instruction=row.get("instruction"),
    )


class ResultsLog:
    """The append-only results file of a run; opening an existing one loads it for resuming.

    A last line cut short by a crash (no newline, not valid JSON) is removed; any other bad line
    stops the run with its line number, because silently redoing work would hide a corrupt file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[RunRow] = []
        self.dropped_partial_line = False
        if path.exists():
            self._load()

    def done(self) -> set[tuple[str, Mode]]:
        """The (image, mode) pairs already in the file."""
        return {row.key for row in self.rows}

    def append(self, row: RunRow) -> None:
        """Write ``row`` as one line and make it durable before the run goes on."""
        line = json.dumps(asdict(row), ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.append(row)

    def _load(self) -> None:
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        tail = data[cut:].decode("utf-8", errors="replace")
        if tail.strip():
            try:
                parse_run_row(self.path, data[:cut].count(b"\n") + 1, tail)
            except ResultsFileError:
                self.dropped_partial_line = True
                os.truncate(self.path, cut)
                data = data[:cut]
            else:
                with self.path.open("ab") as handle:
                    handle.write(b"\n")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResultsFileError(self.path, "file", "is not UTF-8 text") from exc
        self.rows = [
            parse_run_row(self.path, number, line)
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]


def pending_jobs(dataset: Dataset, log: ResultsLog) -> list[tuple[Query, Mode]]:
    """The (query, mode) pairs still to caption, in dataset order, retrieval first."""
    done = log.done()
    return [(q, m) for q in dataset.queries for m in Mode if (q.image, m) not in done]


def run_dataset(
    dataset: Dataset,
    client: ServiceClient,
    log: ResultsLog,
    *,
    top_k: int,
    instructions: tuple[str, ...] | None = None,
    on_concept: Callable[[], None] = lambda: None,
    on_caption: Callable[[], None] = lambda: None,
) -> None:
    """Caption every pending (query, mode) pair of ``dataset`` into ``log``.

    Concepts are created (or found) only when something is pending. ``instructions`` rotate
    over the queries (``None`` sends none: the service's default). The callbacks fire after
    each concept and each caption, for progress displays.
    """
    jobs = pending_jobs(dataset, log)
    if jobs:
        concept_ids = _ensure_concepts(dataset, client, on_concept)
        position = {query.image: i for i, query in enumerate(dataset.queries)}

        def instruction(query: Query) -> str | None:
            return None if instructions is None else rotated(instructions, position[query.image])

        _caption_jobs(
            jobs, concept_ids, client, log, top_k=top_k, instruction=instruction, advance=on_caption
        )


def _ensure_concepts(
    dataset: Dataset, client: ServiceClient, advance: Callable[[], None]
) -> dict[str, ConceptId]:
    ids: dict[str, ConceptId] = {}
    for concept in dataset.concepts:
        ids[concept.name.casefold()] = client.ensure_concept(concept)
        advance()
    return ids


def _caption_jobs(
    jobs: list[tuple[Query, Mode]],
    concept_ids: dict[str, ConceptId],
    client: ServiceClient,
    log: ResultsLog,
    *,
    top_k: int,
    instruction: Callable[[Query], str | None],
    advance: Callable[[], None],
) -> None:
    rank = {key: i for i, key in enumerate(concept_ids)}  # database order
    for query, mode in jobs:
        asked = instruction(query)
        started = time.perf_counter()
        if mode is Mode.RETRIEVAL:
            body = client.caption(query.path, top_k=top_k, instruction=asked)
        else:
            keys = sorted({name.casefold() for name in query.concepts}, key=rank.__getitem__)
            ids = [concept_ids[key] for key in keys]
            body = client.caption(query.path, concept_ids=ids, instruction=asked)
        latency_ms = (time.perf_counter() - started) * 1000
        log.append(
            RunRow(
                image=query.image,
                mode=mode,
                concepts=query.concepts,
                caption=body["caption"],
                latency_ms=round(latency_ms, 3),
                concepts_used=list(body.get("concepts_used") or []),
                concepts_mentioned=list(body.get("concepts_mentioned") or []),
                model=body.get("model"),
                timings_ms=dict(body.get("timings_ms") or {}),
                instruction=asked,
            )
        )
        advance()
