"""Labelled evaluation datasets for ``repic eval run``.

A dataset is a folder with two files::

    my-dataset/
      database.json   concepts, RAP-style (see :mod:`evaluation.database`); image paths
                      relative to this file
      queries.json    the labelled query images, paths relative to the folder:
                      [{"image": "queries/park.jpg", "concepts": ["<bo>"]},
                       {"image": "queries/sofa.jpg", "concepts": ["<bo>", "<thao>"]}]

Every concept a query names must be a key of ``database.json`` (brackets optional, any case);
each query image is listed once and must exist, and so must every concept's reference images.
All of this is checked before anything is sent to a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evaluation.database import DatabaseConcept, DatabaseError, load_database
from model.grounding import bare_name

DATABASE_FILE = "database.json"
QUERIES_FILE = "queries.json"


class DatasetError(ValueError):
    """A dataset that cannot be run; the message says which file or entry and why."""


@dataclass(frozen=True)
class Query:
    """One labelled query image: its path as written in ``queries.json`` and on disk."""

    image: str
    path: Path
    concepts: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    root: Path
    concepts: list[DatabaseConcept]
    queries: list[Query]


def load_dataset(root: Path) -> Dataset:
    """Load and check the dataset in folder ``root`` (see the module docstring)."""
    try:
        concepts = load_database(root / DATABASE_FILE)
    except DatabaseError as exc:
        raise DatasetError(str(exc)) from exc
    for concept in concepts:
        if not concept.images:
            raise DatasetError(f"{root / DATABASE_FILE}: concept {concept.name!r} has no image")
        for image in concept.images:
            _require_file(image, f"reference image of concept {concept.name!r}")
    queries = _load_queries(root / QUERIES_FILE, {c.name.casefold(): c.name for c in concepts})
    return Dataset(root=root, concepts=concepts, queries=queries)


def _load_queries(path: Path, known: dict[str, str]) -> list[Query]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the queries: {exc}") from exc
    if not isinstance(items, list):
        raise DatasetError(f"{path}: expected a JSON list of queries")
    queries: list[Query] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"{path}: query {index}"
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise DatasetError(f'{where}: expected {{"image": path, "concepts": [names]}}')
        concepts = item.get("concepts")
        if not isinstance(concepts, list) or not concepts:
            raise DatasetError(f"{where}: 'concepts' must be a non-empty list of names")
        names = []
        for raw in concepts:
            name = bare_name(raw) if isinstance(raw, str) else ""
            if name.casefold() not in known:
                raise DatasetError(f"{where}: concept {raw!r} is not in {DATABASE_FILE}")
            names.append(known[name.casefold()])
        image = item["image"]
        if image in seen:
            raise DatasetError(f"{where}: image {image!r} is listed twice")
        seen.add(image)
        queries.append(
            Query(image, _require_file(path.parent / image, "query image"), tuple(names))
        )
    return queries


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path
