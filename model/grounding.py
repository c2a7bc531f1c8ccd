"""Which personal concepts a caption names.

Two matchers answer the same question with different rules:

* :func:`find_mentions` (robust, the service default) looks for each concept's name and display
  names as a phrase: case-insensitive, angle brackets optional (``<bo>`` or ``bo``), runs of
  white space inside a name match any white space, straight and typographic apostrophes are
  interchangeable, possessives (``<bo>'s``, ``bo’s``, ``James'``) and surrounding punctuation do
  not hide a name. It matches whole words only: ``bo`` is not found in ``bob``, ``elbow``,
  ``bo2`` or ``bo-like``, and never inside the closing-tag artefact ``</bo>`` (RePIC's training
  reward treats ``</name>`` as a failure, so it is not a mention). Where names overlap, the
  longest match at a position wins (``bo jackson`` over ``bo``); a concept's own name wins over
  another concept's display name covering the same text.
* :func:`official_mentions` / :func:`official_slot_outcomes` re-implement the matcher of the
  RePIC paper's evaluation scripts (``evaluation/eval_multi_{2,4}_concept.py``): remove the
  literal ``</s>``, lower-case (the two-concept script alone does not), split on white space,
  strip ``.,!?;:()[]{}"'-`` from both ends of every token, and a pool entry is present when it,
  or it without its angle brackets, equals a whole token. It cannot see multi-word names,
  possessives or display names; it exists so our numbers can be compared with the paper.

Concept names are stored without angle brackets; brackets given anyway are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

#: Characters the paper's matcher strips from both ends of a token.
OFFICIAL_STRIP = ".,!?;:()[]{}\"'-"
#: The end-of-sequence artefact the paper's scripts remove from a caption before matching.
OFFICIAL_EOS = "</s>"


class SlotOutcome(StrEnum):
    """What a caption did for one ground-truth concept of its image."""

    CORRECT = "correct"
    MISS = "miss"
    EMPTY = "empty"


_APOSTROPHES = "'\u2019\u2018\u02bc\uff07"
_APOSTROPHE_CLASS = "[" + re.escape(_APOSTROPHES) + "]"


@dataclass(frozen=True)
class ConceptName:
    """A concept as the matchers see it: its name and optional display names (aliases)."""

    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mention:
    """One place where a caption names a concept; ``text`` is ``caption[start:end]``."""

    name: str
    start: int
    end: int
    text: str
    via_alias: bool


def bare_name(name: str) -> str:
    """``<Mr.  Whiskers>`` -> ``Mr. Whiskers``: no brackets, single spaces, no outer space."""
    text = name.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return " ".join(text.split())


def find_mentions(caption: str, names: Sequence[ConceptName | str]) -> list[Mention]:
    """Every mention of the given concepts in ``caption``, in reading order (robust matcher).

    Overlapping candidates are resolved leftmost-longest. When two concepts claim exactly the
    same text, a concept's own name beats another's display name; two display names (or two
    names) that tie both count, because the caption cannot tell those concepts apart.
    """
    candidates: list[tuple[int, int, bool, str]] = []
    folded = _loose(caption)
    for concept in names:
        concept = _as_concept(concept)
        for surface, via_alias in _surfaces(concept):
            if not all(piece in folded for piece in _pieces(surface)):
                continue
            for match in _surface_pattern(surface).finditer(caption):
                candidates.append((match.start(), match.end(), via_alias, bare_name(concept.name)))
    # Leftmost first, then longest, then own names before display names.
    candidates.sort(key=lambda c: (c[0], c[0] - c[1], c[2]))
    mentions: list[Mention] = []
    for start, end, via_alias, name in candidates:
        last = mentions[-1] if mentions else None
        tie = (
            last is not None
            and (last.start, last.end, last.via_alias) == (start, end, via_alias)
            and last.name != name
        )
        if tie or last is None or start >= last.end:
            mentions.append(Mention(name, start, end, caption[start:end], via_alias))
    return mentions


def mentioned_names(caption: str, names: Sequence[ConceptName | str]) -> list[str]:
    """Names (without brackets) of the concepts ``caption`` mentions, by first mention."""
    return list(dict.fromkeys(m.name for m in find_mentions(caption, names)))


def official_tokens(caption: str, *, case_sensitive: bool = False) -> list[str]:
    """The paper's token set of ``caption``: ``</s>`` removed, lower-cased unless
    ``case_sensitive``, split on white space, :data:`OFFICIAL_STRIP` stripped, empties dropped."""
    text = caption.replace(OFFICIAL_EOS, "")
    if not case_sensitive:
        text = text.lower()
    return [token for word in text.split() if (token := word.strip(OFFICIAL_STRIP))]


def official_mentions(
    caption: str, names: Sequence[ConceptName | str], *, case_sensitive: bool = False
) -> list[str]:
    """Names (without brackets) of the concepts present by the paper's token rule, by first
    appearance.

    Each name (brackets optional) is present when ``<name>`` or ``name`` equals a token of
    :func:`official_tokens`. Display names are ignored (the paper matched the key only);
    ``case_sensitive`` reproduces the two-concept script, which skipped lower-casing.
    """
    wanted: dict[str, str] = {}
    for concept in names:
        name = bare_name(_as_concept(concept).name)
        form = name if case_sensitive else name.lower()
        for token in (form, f"<{form}>"):
            wanted.setdefault(token, name)
    found = (wanted.get(t) for t in official_tokens(caption, case_sensitive=case_sensitive))
    return list(dict.fromkeys(name for name in found if name is not None))


def official_slot_outcomes(
    caption: str,
    ground_truth: Sequence[str],
    pool: Sequence[str],
    *,
    case_sensitive: bool = False,
) -> list[SlotOutcome]:
    """Each ground-truth slot's outcome exactly as the paper's evaluation scripts decide it.

    ``ground_truth`` and ``pool`` are strings as the result file writes them (the scripts' pool
    is the sorted set of every ground-truth string of the file). A slot is correct when its
    concept is present; else MISS when a present pool entry is not one of this image's
    ground-truth strings, compared as written (so with ``<thor>`` as ground truth, a pool entry
    ``<Thor>`` from another image counts as another concept even though both lower-case to
    ``thor``); else empty.
    """

    def fold(text: str) -> str:
        return text if case_sensitive else text.lower()

    tokens = set(official_tokens(caption, case_sensitive=case_sensitive))
    present = {
        _strip_brackets(fold(c))
        for c in pool
        if fold(c) in tokens or _strip_brackets(fold(c)) in tokens
    }
    others = {_strip_brackets(fold(c)) for c in pool if c not in ground_truth}
    wrong = bool(present & others)
    outcomes = []
    for concept in ground_truth:
        if _strip_brackets(fold(concept)) in present:
            outcomes.append(SlotOutcome.CORRECT)
        elif wrong:
            outcomes.append(SlotOutcome.MISS)
        else:
            outcomes.append(SlotOutcome.EMPTY)
    return outcomes


def _strip_brackets(text: str) -> str:
    """``<Thor>`` -> ``Thor``; anything not both opened and closed by a bracket stays as is."""
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


def _as_concept(concept: ConceptName | str) -> ConceptName:
    return ConceptName(concept) if isinstance(concept, str) else concept


def _surfaces(concept: ConceptName) -> Iterator[tuple[str, bool]]:
    seen: set[str] = set()
    for surface, via_alias in [(concept.name, False), *((a, True) for a in concept.aliases)]:
        text = bare_name(surface)
        key = _apostrophes_to_ascii(text).casefold()
        if text and key not in seen:
            seen.add(key)
            yield text, via_alias


def _apostrophes_to_ascii(text: str) -> str:
    return re.sub(_APOSTROPHE_CLASS, "'", text)


@lru_cache(maxsize=4096)
def _pieces(surface: str) -> tuple[str, ...]:
    """The loosely folded pieces of ``surface`` between spaces and apostrophes. A caption
    lacking one of them cannot match, so most names skip the regular expression."""
    return tuple(re.split(r"'|\s+", _loose(surface)))


def _loose(text: str) -> str:
    """Case folding that never separates two characters ``re.IGNORECASE`` treats as equal:
    ``str.casefold`` alone splits the Turkish ``İ`` (to ``i`` + U+0307) and keeps ``ı``."""
    return _apostrophes_to_ascii(text).casefold().replace("\u0307", "").replace("ı", "i")


@lru_cache(maxsize=4096)
def _surface_pattern(surface: str) -> re.Pattern[str]:
    body = r"\s+".join(
        _APOSTROPHE_CLASS.join(re.escape(piece) for piece in re.split(_APOSTROPHE_CLASS, word))
        for word in surface.split()
    )
    # A bare name must not touch a word character, nor a hyphen that joins it to a word
    # (``bo-like``), nor sit inside the closing-tag artefact ``</bo>``.
    bare = rf"(?<!</)(?<!\w)(?<!\w-){body}(?!\w)(?!-\w)"
    return re.compile(rf"<{body}>|{bare}", re.IGNORECASE)
