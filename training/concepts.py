"""Concept databases for building training data, and the stand-in names swapped into prompts.

Two layouts are read:

* a RAP/RePIC ``database.json``::

      {"concept_dict": {"<bo>": {"name": "bo", "image": ["bo/1.jpg", ...] or "bo/1.jpg",
                                 "info": "...", "category": "dog"}}}

  with image paths relative to the file (absolute paths are taken as they are);
* a folder with one sub-folder per concept: the sub-folder's name is the concept's name, its
  images are the references, and an optional ``info.txt`` / ``category.txt`` give the rest.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})

_ONSETS = ("b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "i", "ia")
_CODAS = ("", "", "", "n", "l", "r", "s")


class ConceptDatabaseError(ValueError):
    """A concept database that cannot be read; the message says what to fix."""


@dataclass(frozen=True)
class Concept:
    """A named concept with its reference photos (``name`` without angle brackets)."""

    name: str
    info: str
    category: str
    images: tuple[Path, ...]


def load_concepts(source: Path) -> list[Concept]:
    """Read a ``database.json`` or a folder of per-concept folders, sorted by name."""
    if source.is_file():
        concepts = _from_database_json(source)
    elif source.is_dir():
        concepts = _from_folders(source)
    else:
        raise ConceptDatabaseError(f"{source} is neither a database.json nor a folder.")
    if len(concepts) < 2:
        raise ConceptDatabaseError(
            f"{source} holds {len(concepts)} concept(s); negatives and collages need at least 2."
        )
    return sorted(concepts, key=lambda c: c.name)


def person_like_names(rng: random.Random, count: int, *, avoid: Iterable[str] = ()) -> list[str]:
    """``count`` distinct made-up, pronounceable first names (``"mira"``, ``"tosen"``, ...)."""
    taken = {n.lower() for n in avoid}
    names: list[str] = []
    while len(names) < count:
        syllables = rng.choice((2, 2, 2, 3))
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
        name += rng.choice(_CODAS)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def rename_in_text(text: str, old: str, new: str) -> str:
    """Replace ``old`` as a whole word (any case, brackets kept as they were) with ``new``."""
    pattern = re.compile(rf"(?<!\w){re.escape(old)}(?!\w)", re.IGNORECASE)
    return pattern.sub(new, text)


def _from_database_json(path: Path) -> list[Concept]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConceptDatabaseError(f"{path} is not readable JSON: {exc}") from exc
    entries = raw.get("concept_dict") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise ConceptDatabaseError(f'{path} needs a top-level "concept_dict" object.')
    concepts = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            raise ConceptDatabaseError(f"{path}: the entry {key!r} is not an object.")
        name = str(entry.get("name") or key).strip().removeprefix("<").removesuffix(">")
        listed = entry.get("image")
        paths = [listed] if isinstance(listed, str) else listed
        if not isinstance(paths, list) or not paths:
            raise ConceptDatabaseError(f'{path}: concept {key!r} lists no "image" paths.')
        images = tuple(_existing(path.parent / str(p), key) for p in paths)
        concepts.append(
            Concept(
                name=name,
                info=str(entry.get("info") or ""),
                category=str(entry.get("category") or ""),
                images=images,
            )
        )
    return concepts


def _from_folders(root: Path) -> list[Concept]:
    concepts = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not images:
            raise ConceptDatabaseError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        concepts.append(
            Concept(
                name=folder.name,
                info=_optional_text(folder / "info.txt"),
                category=_optional_text(folder / "category.txt"),
                images=images,
            )
        )
    return concepts


def _existing(path: Path, key: str) -> Path:
    if not path.is_file():
        raise ConceptDatabaseError(f"Concept {key!r}: the image {path} does not exist.")
    return path


def _optional_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""
