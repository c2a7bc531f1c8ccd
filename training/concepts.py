"""Concepts for building training data, and the stand-in names swapped into prompts.

Concepts come from a RAP/RePIC ``database.json`` or a folder of concept folders, read strictly
by :mod:`model.concept_sources`: a concept's name is its database key (or folder name), the
name the model writes as ``<name>``; a different ``name`` in the entry is its display name.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path

from model.concept_sources import ConceptSourceError, SourceConcept, load_concept_source

_ONSETS = ("b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "i", "ia")
_CODAS = ("", "", "", "n", "l", "r", "s")

# Training's names for the shared reader's types.
ConceptDatabaseError = ConceptSourceError
Concept = SourceConcept


def load_concepts(source: Path) -> list[Concept]:
    """Read a ``database.json`` or a folder of per-concept folders, sorted by name."""
    concepts = load_concept_source(source).concepts
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
