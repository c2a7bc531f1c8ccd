"""The caption instructions of the paper's captioning scripts, and how a run rotates them.

RePIC's caption scripts do not ask one fixed question: each has a small set and gives the
``i``-th query image of a run (in the order of its query file) instruction ``i mod n``. The
single-concept script (``caption_eval_single.py``) has four, the two- and four-concept scripts
(``caption_eval_multi_2.py``, ``caption_eval_multi_4.py``) share three. The rotation is a plain
counter, not a random draw, so a run is reproducible without a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from model.prompt import DEFAULT_INSTRUCTION

SINGLE_CONCEPT_INSTRUCTIONS = (
    "Give a personalized caption of this image.",
    "Give a caption of the image.",
    "Can you provide a personalized caption of this photo?",
    "Provide a caption of the given image.",
)
MULTI_CONCEPT_INSTRUCTIONS = (
    "Give a personalized caption of this image.",
    "Give a personal caption of the image.",
    "Provide a personalized caption of the given image.",
)


class InstructionSet(StrEnum):
    """``auto``: ``single`` when every query shows one concept, else ``multi``; ``fixed``:
    always the service's default instruction."""

    AUTO = "auto"
    SINGLE = "single"
    MULTI = "multi"
    FIXED = "fixed"


def instructions_for(choice: InstructionSet, concepts_per_query: Sequence[int]) -> tuple[str, ...]:
    """The instructions a run rotates through, given how many concepts each query shows."""
    if choice is InstructionSet.AUTO:
        single = all(n == 1 for n in concepts_per_query)
        choice = InstructionSet.SINGLE if single else InstructionSet.MULTI
    if choice is InstructionSet.SINGLE:
        return SINGLE_CONCEPT_INSTRUCTIONS
    if choice is InstructionSet.MULTI:
        return MULTI_CONCEPT_INSTRUCTIONS
    return (DEFAULT_INSTRUCTION,)


def rotated(instructions: Sequence[str], index: int) -> str:
    """The instruction of the ``index``-th query (0-based) of a run."""
    return instructions[index % len(instructions)]
