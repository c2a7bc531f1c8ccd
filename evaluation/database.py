"""RAP/RePIC-style concept databases (``database.json``).

The file looks like::

    {"concept_dict": {
        "<ironman>": {"name": "Iron Man", "image": ["ironman/1.png", "ironman/2.png"],
                      "info": "<ironman> wears a red and gold suit.", "category": "person"},
        "<bo>": {"name": "bo", "image": "bo.png", "info": "...", "category": "dog"}}}

The key (brackets optional) is the concept's name, the one the model writes as ``<ironman>``.
``name`` is a display name; when it differs from the key it becomes an alias for the robust
matcher. ``image`` is one path or a list; other top-level keys (``path_to_concept``) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.grounding import ConceptName, bare_name


class DatabaseError(ValueError):
    """A database file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class DatabaseConcept:
    """One concept of a database, image paths resolved (they may still not exist)."""

    name: str
    display_name: str | None
    info: str
    category: str | None
    images: tuple[Path, ...]

    def matcher_name(self) -> ConceptName:
        """The concept for the grounding matchers, its display name as an alias."""
        aliases = (self.display_name,) if self.display_name else ()
        return ConceptName(self.name, aliases)


def load_database(path: Path) -> list[DatabaseConcept]:
    """All concepts of ``path`` in file order; raises :class:`DatabaseError` on bad content."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatabaseError(f"{path}: cannot read the database: {exc}") from exc
    entries = document.get("concept_dict") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise DatabaseError(f'{path}: expected an object with a "concept_dict" object')
    concepts = [_concept(path, key, entry) for key, entry in entries.items()]
    seen: set[str] = set()
    for concept in concepts:
        if concept.name.casefold() in seen:
            raise DatabaseError(f"{path}: concept {concept.name!r} appears twice")
        seen.add(concept.name.casefold())
    return concepts


def resolve_image(database: Path, relative: str) -> Path:
    """Where an image path of ``database`` points.

    Paths are relative to the database's folder. RAP's own files write them relative to the
    repository root (``example_database/bo.png`` beside ``example_database/database.json``), so
    a path that does not exist there but does one folder up is taken from there.
    """
    here = database.parent / relative
    if here.exists():
        return here
    above = database.parent.parent / relative
    return above if above.exists() else here


def _concept(path: Path, key: str, entry: object) -> DatabaseConcept:
    name = bare_name(key)
    if not name or not isinstance(entry, dict):
        raise DatabaseError(f"{path}: concept {key!r}: expected a non-empty name and an object")
    images = entry.get("image", [])
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise DatabaseError(f"{path}: concept {key!r}: 'image' must be a path or a list of paths")
    display = bare_name(_text(path, key, entry, "name") or "")
    return DatabaseConcept(
        name=name,
        display_name=display if display and display.casefold() != name.casefold() else None,
        info=_text(path, key, entry, "info") or "",
        category=_text(path, key, entry, "category"),
        images=tuple(resolve_image(path, image) for image in images),
    )


def _text(path: Path, key: str, entry: dict[str, object], field: str) -> str | None:
    value = entry.get(field)
    if value is not None and not isinstance(value, str):
        raise DatabaseError(f"{path}: concept {key!r}: {field!r} must be a string")
    return value


def ground_truth_pool(
    ground_truth: Iterable[str], concepts: Sequence[DatabaseConcept]
) -> list[ConceptName]:
    """The ground-truth concepts with their display names from ``concepts``.

    The candidate pool stays the set of ground-truth concepts (the paper's definition); the
    database only adds display names, so scores with and without it are comparable.
    """
    by_key = {c.name.casefold(): c for c in concepts}
    pool: dict[str, ConceptName] = {}
    for name in ground_truth:
        key = bare_name(name).casefold()
        aliases = by_key[key].matcher_name().aliases if key in by_key else ()
        pool.setdefault(key, ConceptName(bare_name(name), aliases))
    return list(pool.values())
