"""Concepts kept outside the service: RAP/RePIC ``database.json`` files and concept folders.

Evaluation, training-data building and ``repic concepts import`` all read them here, so a
concept has the same name everywhere. Two layouts:

* a ``database.json`` as RAP and RePIC ship it::

      {"concept_dict": {
          "<ironman>": {"name": "Iron Man", "image": ["ironman/1.png", "ironman/2.png"],
                        "info": "<ironman> wears a red and gold suit.", "category": "person"},
          "<bo>": {"name": "bo", "image": "bo.png", "info": "...", "category": "dog"}}}

  The key (angle brackets optional) is the concept's name: its identity, the string ground
  truth and ``queries.json`` use. ``name`` is the display name, kept when it differs from the
  key in any way (case included): RePIC's retriever shows the model ``<{name}>``, so the
  service does too (``Iron Man`` for the key ``<ironman>``), and the robust grounding matcher
  credits either. ``info`` is kept exactly as written (the prompt shows it byte for byte).
  ``image`` is one path or a list, relative to the file (see :func:`resolve_image`); other
  top-level keys (``path_to_concept``) are ignored.
* a folder with one folder per concept: the folder's name is the concept's name, its image
  files (by suffix, see :data:`IMAGE_SUFFIXES`) are the references, and optional ``info.txt``
  and ``category.txt`` give the rest. Hidden files and folders are skipped.

Strict reading stops at the first problem; tolerant reading reports each bad entry or image,
leaves it out and goes on, so an import can take what is usable and say what was not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from model.grounding import ConceptName, bare_name

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
INFO_FILE = "info.txt"
CATEGORY_FILE = "category.txt"

_JSON_HINT = 'list its photos under "image"'
_FOLDER_HINT = "put " + "/".join(sorted(IMAGE_SUFFIXES)) + " files in its folder"


class ConceptSourceError(ValueError):
    """A concept source that cannot be read; the message names the file, the concept and why."""


class _Malformed(Exception):
    """An entry that cannot become a concept; the message is the problem."""


@dataclass(frozen=True)
class SourceConcept:
    """One concept of a source: name without brackets, image paths resolved; ``display_name``
    is what a prompt shows when it is set."""

    name: str
    display_name: str | None
    info: str
    category: str | None
    images: tuple[Path, ...]

    @property
    def shown_name(self) -> str:
        """The name a prompt shows in angle brackets."""
        return self.display_name or self.name

    def matcher_name(self) -> ConceptName:
        """The concept for the grounding matchers, its display name as an alias."""
        aliases = (self.display_name,) if self.display_name else ()
        return ConceptName(self.name, aliases)


@dataclass(frozen=True)
class SourceLoad:
    """What a read produced: the usable concepts, and one message per thing left out."""

    concepts: list[SourceConcept]
    problems: list[str]


def load_concept_source(path: Path, *, strict: bool = True, need_images: bool = True) -> SourceLoad:
    """Read the ``database.json`` file or the folder of concept folders at ``path``.

    Concepts come in file order (JSON) or sorted by folder name. With ``strict`` the first
    problem raises :class:`ConceptSourceError`: a malformed entry, a name seen before (any
    case), a missing image, a concept without images. Otherwise each problem becomes a line of
    :attr:`SourceLoad.problems` naming the concept and file: bad entries and repeated names are
    left out, missing images are dropped, and a concept left without images is left out.
    A source that cannot be read at all (no such path, not JSON, no ``concept_dict``) raises
    either way. ``need_images=False`` resolves image paths without checking or requiring them,
    for databases read only for their names.
    """
    if path.is_file():
        candidates, hint = _from_database_json(path), _JSON_HINT
    elif path.is_dir():
        candidates, hint = _from_folders(path), _FOLDER_HINT
    else:
        raise ConceptSourceError(f"{path}: no such file or folder")
    concepts: list[SourceConcept] = []
    problems: list[str] = []

    def report(problem: str) -> None:
        if strict:
            raise ConceptSourceError(f"{path}: {problem}")
        problems.append(problem)

    taken: set[str] = set()
    for candidate in candidates:
        if isinstance(candidate, str):
            report(candidate)
            continue
        if candidate.name.casefold() in taken:
            report(f"concept {candidate.name!r} appears twice; the first one is kept")
            continue
        if need_images:
            candidate = _with_existing_images(candidate, report)
            if not candidate.images:
                report(f"concept {candidate.name!r} has no reference image; {hint}")
                continue
        taken.add(candidate.name.casefold())
        concepts.append(candidate)
    return SourceLoad(concepts, problems)


def resolve_image(database: Path, relative: str) -> Path:
    """Where an image path of the file ``database`` points.

    Paths are relative to the database's folder (absolute ones stay as they are). RAP's own
    files write them relative to the repository root (``example_database/bo.png`` beside
    ``example_database/database.json``), so a path that does not exist there but does one
    folder up is taken from there.
    """
    here = database.parent / relative
    if here.exists():
        return here
    above = database.parent.parent / relative
    return above if above.exists() else here


def _with_existing_images(concept: SourceConcept, report: Callable[[str], None]) -> SourceConcept:
    existing = []
    for image in concept.images:
        if image.is_file():
            existing.append(image)
        else:
            report(f"concept {concept.name!r}: image {image} does not exist")
    return replace(concept, images=tuple(existing))


def _from_database_json(path: Path) -> Iterator[SourceConcept | str]:
    """Each entry as a concept, or as the problem that rules it out."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConceptSourceError(f"{path}: cannot read it as JSON: {exc}") from exc
    entries = document.get("concept_dict") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise ConceptSourceError(f'{path}: expected an object with a "concept_dict" object')
    for key, entry in entries.items():
        try:
            yield _database_entry(path, key, entry)
        except _Malformed as exc:
            yield str(exc)


def _database_entry(path: Path, key: str, entry: object) -> SourceConcept:
    name = bare_name(key)
    if not name:
        raise _Malformed(f'entry {key!r}: the key must be a concept name such as "<bo>"')
    if not isinstance(entry, dict):
        raise _Malformed(f'concept {name!r}: expected an object with "image", "info", ...')
    images = entry.get("image", [])
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
        raise _Malformed(f"concept {name!r}: 'image' must be a path or a list of paths")
    display = bare_name(_text(name, entry, "name") or "")
    return SourceConcept(
        name=name,
        display_name=display if display and display != name else None,
        info=_text(name, entry, "info") or "",
        category=(_text(name, entry, "category") or "").strip() or None,
        images=tuple(resolve_image(path, image) for image in images),
    )


def _text(name: str, entry: dict[str, object], field: str) -> str | None:
    value = entry.get(field)
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"concept {name!r}: {field!r} must be a string")
    return value


def _from_folders(root: Path) -> Iterator[SourceConcept | str]:
    """Each concept folder as a concept, or as the problem that rules it out."""
    # Hidden entries are tool litter (.git, macOS "._x.jpg" forks), never concepts or photos.
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p)):
        name = bare_name(folder.name)
        if not name:
            yield f"folder {folder}: its name is not a usable concept name"
            continue
        try:
            info = _optional_text(folder / INFO_FILE, name)
            category = _optional_text(folder / CATEGORY_FILE, name)
        except _Malformed as exc:
            yield str(exc)
            continue
        images = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not _hidden(p) and p.suffix.lower() in IMAGE_SUFFIXES
        )
        yield SourceConcept(
            name=name,
            display_name=None,
            info=info,
            category=category or None,
            images=tuple(images),
        )


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _optional_text(path: Path, name: str) -> str:
    if not path.is_file():
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Malformed(f"concept {name!r}: cannot read {path} as UTF-8 text: {exc}") from exc
