"""Personal grounding scores: did the caption name the right concepts?

Scores are counted per ground-truth *slot* and micro-averaged over a whole result set (DESIGN.md
§3). For each image and each of its ground-truth concepts the slot is

* ``correct`` when the caption mentions that concept,
* ``MISS`` when it does not, but mentions any other concept of the candidate pool (another
  ground-truth concept of the same image counts too: naming ``<bo>`` does not fill the
  ``<butin>`` slot),
* ``empty`` when it mentions no concept of the pool at all.

precision = correct / (correct + MISS), recall = correct / slots, F1 = their harmonic mean.
A ratio with a zero denominator is 0.0: a result set that never names a concept has earned no
precision, and an empty one scores nothing.

The candidate pool defaults to every ground-truth concept of the result set (the paper's
choice); an explicit pool (for instance the whole concept database with display names) is
merged with the ground-truth concepts. Concept identity ignores angle brackets and, unless the
official matcher runs case-sensitively, letter case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum

from model.grounding import ConceptName, bare_name, mentioned_names, official_mentions


class Matcher(StrEnum):
    """``robust`` phrase matcher (default) or the paper's ``official`` token matcher."""

    ROBUST = "robust"
    OFFICIAL = "official"


class SlotOutcome(StrEnum):
    CORRECT = "correct"
    MISS = "miss"
    EMPTY = "empty"


@dataclass(frozen=True)
class GroundingSample:
    """One captioned image and the names of the concepts it really shows."""

    caption: str
    concepts: tuple[str, ...]


@dataclass(frozen=True)
class GroundingScores:
    """Slot counts of a result set and the ratios derived from them."""

    images: int
    correct: int
    miss: int
    empty: int

    @property
    def slots(self) -> int:
        return self.correct + self.miss + self.empty

    @property
    def precision(self) -> float:
        return _ratio(self.correct, self.correct + self.miss)

    @property
    def recall(self) -> float:
        return _ratio(self.correct, self.slots)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    def as_dict(self) -> dict[str, int | float]:
        """Counts and ratios as plain JSON-ready values."""
        return {
            "images": self.images,
            "slots": self.slots,
            "correct": self.correct,
            "miss": self.miss,
            "empty": self.empty,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def slot_outcomes(ground_truth: Sequence[str], mentioned: Set[str]) -> list[SlotOutcome]:
    """The outcome of each ground-truth slot, given the concept keys the caption mentions.

    Both arguments must already be concept keys (see :func:`concept_key`).
    """
    outcomes = []
    for concept in ground_truth:
        if concept in mentioned:
            outcomes.append(SlotOutcome.CORRECT)
        elif mentioned - {concept}:
            outcomes.append(SlotOutcome.MISS)
        else:
            outcomes.append(SlotOutcome.EMPTY)
    return outcomes


def concept_key(name: str, *, case_sensitive: bool = False) -> str:
    """The identity of a concept name: no brackets, single spaces, case-folded by default."""
    bare = bare_name(name)
    return bare if case_sensitive else bare.casefold()


def score_grounding(
    samples: Iterable[GroundingSample],
    *,
    matcher: Matcher = Matcher.ROBUST,
    case_sensitive: bool = False,
    pool: Sequence[ConceptName | str] | None = None,
) -> GroundingScores:
    """Micro-averaged grounding scores of ``samples``.

    ``case_sensitive`` only exists for the official matcher (the robust one always ignores
    case); asking for it with the robust matcher is a ``ValueError``.
    """
    if case_sensitive and matcher is not Matcher.OFFICIAL:
        raise ValueError("case_sensitive applies to the official matcher only")
    samples = list(samples)
    candidates = _candidate_pool(samples, pool, case_sensitive=case_sensitive)
    counts = dict.fromkeys(SlotOutcome, 0)
    for sample in samples:
        if matcher is Matcher.OFFICIAL:
            names = official_mentions(sample.caption, candidates, case_sensitive=case_sensitive)
        else:
            names = mentioned_names(sample.caption, candidates)
        mentioned = {concept_key(n, case_sensitive=case_sensitive) for n in names}
        truth = [concept_key(c, case_sensitive=case_sensitive) for c in sample.concepts]
        for outcome in slot_outcomes(truth, mentioned):
            counts[outcome] += 1
    return GroundingScores(
        images=len(samples),
        correct=counts[SlotOutcome.CORRECT],
        miss=counts[SlotOutcome.MISS],
        empty=counts[SlotOutcome.EMPTY],
    )


def _candidate_pool(
    samples: Sequence[GroundingSample],
    pool: Sequence[ConceptName | str] | None,
    *,
    case_sensitive: bool,
) -> list[ConceptName]:
    """The explicit pool plus every ground-truth concept, one entry per concept key."""
    merged: dict[str, ConceptName] = {}
    given = [ConceptName(c) if isinstance(c, str) else c for c in pool or ()]
    truth = [ConceptName(name) for sample in samples for name in sample.concepts]
    for concept in [*given, *truth]:
        key = concept_key(concept.name, case_sensitive=case_sensitive)
        known = merged.get(key)
        aliases = concept.aliases if known is None else known.aliases + concept.aliases
        merged[key] = ConceptName(bare_name(concept.name), aliases)
    return list(merged.values())


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
