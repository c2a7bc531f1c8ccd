"""RAP/RePIC-style concept databases (``database.json``) as evaluation uses them.

The format and its reader live in :mod:`model.concept_sources`: the key (brackets optional) is
the concept's name, the entry's ``name`` a display name that the robust matcher takes as an
alias. Evaluation reads a database strictly; its images are resolved but not checked here,
because ``repic eval grounding --database`` reads a file only for its display names (a run's
dataset checks them, see :mod:`evaluation.dataset`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from model.concept_sources import ConceptSourceError, SourceConcept, load_concept_source
from model.grounding import ConceptName, bare_name

# Evaluation's names for the shared reader's types.
DatabaseError = ConceptSourceError
DatabaseConcept = SourceConcept


def load_database(path: Path) -> list[DatabaseConcept]:
    """All concepts of ``path`` in file order; raises :class:`DatabaseError` on bad content."""
    return load_concept_source(path, need_images=False).concepts


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
