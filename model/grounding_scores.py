"""Personal grounding scores: did the caption name the right concepts?

Scores are counted per ground-truth *slot* and micro-averaged over a whole result set, as the
RePIC paper's evaluation scripts count them. For each image and each of its ground-truth
concepts the slot is

* ``correct`` when the caption mentions that concept,
* ``MISS`` when it does not, but mentions a concept of the candidate pool that is *not* among
  this image's ground-truth concepts (naming the image's other ground-truth concepts is never a
  MISS: a caption naming 2 of 4 and nothing else scores 2 correct and 2 empty),
* ``empty`` otherwise.

precision = correct / (correct + MISS), recall = correct / slots, F1 = their harmonic mean.
A ratio with a zero denominator is 0.0: a result set that never names a concept has earned no
precision, and an empty one scores nothing.

The candidate pool defaults to every ground-truth concept of the result set (the paper's
choice); an explicit pool (for instance the whole concept database with display names) is
merged with the ground-truth concepts.

The robust matcher keys concepts by :func:`concept_key` (no brackets, case-folded). The
official matcher follows the paper's evaluation scripts to the letter (see
:func:`model.grounding.official_slot_outcomes`): ground-truth names are taken exactly as
written (``<Thor>`` and ``<thor>`` are two pool entries whose lower-cased forms coincide), the
literal ``</s>`` is removed from captions, and only the two-concept script's case-sensitive
rule (``case_sensitive=True``) skips lower-casing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum

from model.grounding import (
    ConceptName,
    SlotOutcome,
    bare_name,
    mentioned_names,
    official_slot_outcomes,
)


class Matcher(StrEnum):
    """``robust`` phrase matcher (default) or the paper's ``official`` token matcher."""

    ROBUST = "robust"
    OFFICIAL = "official"


@dataclass(frozen=True)
class GroundingSample:
    """One captioned image and the names of the concepts it really shows.

    ``concepts`` are written as the result file writes them (``<Anya>``, ``bo``): the robust
    matcher keys them, the official matcher needs the original strings."""

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

    Both arguments must already be concept keys (see :func:`concept_key`). A slot is MISS only
    when a mentioned concept is outside ``ground_truth``.
    """
    outside = mentioned - set(ground_truth)
    outcomes = []
    for concept in ground_truth:
        if concept in mentioned:
            outcomes.append(SlotOutcome.CORRECT)
        elif outside:
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
    counts = dict.fromkeys(SlotOutcome, 0)
    if matcher is Matcher.OFFICIAL:
        written = _official_pool(samples, pool, case_sensitive=case_sensitive)
        for sample in samples:
            for outcome in official_slot_outcomes(
                sample.caption, sample.concepts, written, case_sensitive=case_sensitive
            ):
                counts[outcome] += 1
    else:
        candidates = _candidate_pool(samples, pool)
        for sample in samples:
            mentioned = {concept_key(n) for n in mentioned_names(sample.caption, candidates)}
            truth = [concept_key(c) for c in sample.concepts]
            for outcome in slot_outcomes(truth, mentioned):
                counts[outcome] += 1
    return GroundingScores(
        images=len(samples),
        correct=counts[SlotOutcome.CORRECT],
        miss=counts[SlotOutcome.MISS],
        empty=counts[SlotOutcome.EMPTY],
    )


def _candidate_pool(
    samples: Sequence[GroundingSample], pool: Sequence[ConceptName | str] | None
) -> list[ConceptName]:
    """The explicit pool plus every ground-truth concept, one entry per concept key."""
    merged: dict[str, ConceptName] = {}
    given = [ConceptName(c) if isinstance(c, str) else c for c in pool or ()]
    truth = [ConceptName(name) for sample in samples for name in sample.concepts]
    for concept in [*given, *truth]:
        key = concept_key(concept.name)
        known = merged.get(key)
        aliases = concept.aliases if known is None else known.aliases + concept.aliases
        merged[key] = ConceptName(bare_name(concept.name), aliases)
    return list(merged.values())


def _official_pool(
    samples: Sequence[GroundingSample],
    pool: Sequence[ConceptName | str] | None,
    *,
    case_sensitive: bool,
) -> list[str]:
    """The paper's pool: every ground-truth string as written, sorted; explicit pool members
    whose concept is not among them join as ``<name>`` (display names play no part)."""
    written = sorted({name for sample in samples for name in sample.concepts})
    known = {concept_key(name, case_sensitive=case_sensitive) for name in written}
    for concept in pool or ():
        name = concept if isinstance(concept, str) else concept.name
        key = concept_key(name, case_sensitive=case_sensitive)
        if key not in known:
            known.add(key)
            written.append(f"<{bare_name(name)}>")
    return written


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
