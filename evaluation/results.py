"""Caption result files, in either of two formats, detected from the content.

* ``jsonl`` (ours, written by ``repic eval run``): one JSON object per line with at least
  ``{"image": str, "concepts": [str, ...], "caption": str}`` and optionally ``"mode"``; other
  keys are ignored. Blank lines are skipped.
* ``reference`` (the RePIC/RAP evaluation scripts): one JSON list whose items are
  ``[image_path, ["<Anya>", ...], caption, question]`` (the question may be absent).

Concept names may carry angle brackets; ``ResultRecord.concepts`` holds them without, and
``ResultRecord.written`` holds the ground truth as the paper's evaluation scripts see it (the
official matcher compares those strings as written): a reference file's strings unchanged, our
JSONL's names as ``<name>`` (the form a concept of ours is written in a caption).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from model.grounding import bare_name


class ResultsFormat(StrEnum):
    JSONL = "jsonl"
    REFERENCE = "reference"


class ResultsFileError(ValueError):
    """A result file that cannot be read; the message names the file and the line or item."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")
        self.path = path
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class ResultRecord:
    """One captioned image: where it came from, its ground-truth concepts and the caption."""

    image: str
    concepts: tuple[str, ...]
    caption: str
    mode: str | None = None
    written: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    format: ResultsFormat
    records: list[ResultRecord]

    def modes(self) -> list[str | None]:
        """The modes present, in order of first appearance (``None`` when a row has none)."""
        return list(dict.fromkeys(r.mode for r in self.records))


def read_results(path: Path) -> ResultsFile:
    """Read a result file of either format; raises :class:`ResultsFileError` on bad content."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsFileError(path, "file", "is not UTF-8 text") from exc
    if text.lstrip().startswith("["):
        return ResultsFile(path, ResultsFormat.REFERENCE, _read_reference(path, text))
    return ResultsFile(path, ResultsFormat.JSONL, _read_jsonl(path, text))


def parse_jsonl_record(path: Path, line_no: int, line: str) -> ResultRecord:
    """One line of our JSONL format as a record (``line_no`` is 1-based, for messages)."""
    where = f"line {line_no}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(path, where, f"not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise ResultsFileError(path, where, "expected a JSON object")
    missing = [k for k in ("image", "concepts", "caption") if k not in row]
    if missing:
        raise ResultsFileError(path, where, f"missing key(s): {', '.join(missing)}")
    mode = row.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise ResultsFileError(path, where, "'mode' must be a string")
    concepts = _concepts(path, where, row["concepts"])
    return ResultRecord(
        image=_string(path, where, "image", row["image"]),
        concepts=concepts,
        caption=_string(path, where, "caption", row["caption"]),
        mode=mode,
        written=tuple(f"<{name}>" for name in concepts),
    )


def _read_jsonl(path: Path, text: str) -> list[ResultRecord]:
    return [
        parse_jsonl_record(path, line_no, line)
        for line_no, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _read_reference(path: Path, text: str) -> list[ResultRecord]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from exc
    if not isinstance(items, list):
        raise ResultsFileError(path, "file", "expected a JSON list")
    records = []
    for index, item in enumerate(items):
        where = f"item {index}"
        if not isinstance(item, list) or len(item) not in (3, 4):
            raise ResultsFileError(
                path, where, "expected [image_path, [concept names], caption, question]"
            )
        concepts = _concepts(path, where, item[1])
        records.append(
            ResultRecord(
                image=_string(path, where, "image path", item[0]),
                concepts=concepts,
                caption=_string(path, where, "caption", item[2]),
                written=tuple(item[1]),
            )
        )
    return records


def _string(path: Path, where: str, field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ResultsFileError(path, where, f"{field} must be a string, got {_kind(value)}")
    return value


def _concepts(path: Path, where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ResultsFileError(path, where, f"concepts must be a list, got {_kind(value)}")
    names = []
    for item in value:
        if not isinstance(item, str) or not bare_name(item):
            raise ResultsFileError(
                path, where, f"concept names must be non-empty strings: {item!r}"
            )
        names.append(bare_name(item))
    return tuple(names)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
