"""The training prompt of RePIC's GRPO script, and our inference prompt as an alternative.

RePIC does not train on the prompt it captions with. Its training script
(``grpo_multitask_multi_img_no_format.py``) builds one user turn with no system message: one
image placeholder per image, all first, then ONE text part, the sample's question with a
per-task suffix:

* OCT (``yes_no``): :data:`OCT_SUFFIX`;
* VLT (``iou``): :data:`VLT_SUFFIX`, and a single image (the script's box route gives a
  multi-image sample one placeholder only, so its box samples show the query alone);
* ICT (``yes_no_name``/``yes_no_name_multi``): a suffix drawn for each sample, 1 in 5
  :data:`ICT_NAME_SUFFIX`, 1 in 5 :data:`ICT_NO_REPEAT_SUFFIX`, 3 in 5 nothing.

The script draws the ICT suffix each time it reads a sample; a built dataset draws it once per
row, from the data seed. The questions themselves live in RePIC's training JSON, which is not
public: ours put the demonstrations' ``N. Name: <x>, Info: ...`` lines (one per line) before the
question, because the text part is the only place the names can be given.

``inference`` (the alternative) trains on exactly what the service sends at caption time:
the system message and the interleaved demonstrations of :mod:`model.prompt`. Choose it to
adapt a model to this service's own prompt rather than to reproduce the paper.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

OCT_SUFFIX = " The final answer must be either 'yes' or 'no' with no additional output."
VLT_SUFFIX = " For bounding box coordinates, return the final answer in JSON format."
ICT_NAME_SUFFIX = " Output the final answer including its name."
ICT_NO_REPEAT_SUFFIX = " Output the final answer without duplicating the given information."

OCT_QUESTION = "Is {name} in this image?"
VLT_QUESTION = "Locate {name} in the image."
ICT_QUESTION = "Give a personalized caption of this image."


class PromptStyle(StrEnum):
    """``reference``: the paper's training prompt (default); ``inference``: the service's."""

    REFERENCE = "reference"
    INFERENCE = "inference"


@dataclass(frozen=True)
class TrainingTurn:
    """A reference-style prompt: how many image placeholders, then the one text part."""

    images: int
    text: str

    def messages(self) -> list[dict[str, Any]]:
        """The conversational ``prompt`` column TRL takes: one user turn, no system message."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(self.images)]
        content.append({"type": "text", "text": self.text})
        return [{"role": "user", "content": content}]


def ict_suffix(rng: random.Random) -> str:
    """The randomized caption suffix: a roll of 0-4, as the reference script rolls it."""
    roll = rng.randint(0, 4)
    if roll == 0:
        return ICT_NAME_SUFFIX
    if roll == 1:
        return ICT_NO_REPEAT_SUFFIX
    return ""


def reference_turn(
    demo_lines: Sequence[str], images: int, question: str, suffix: str
) -> TrainingTurn:
    """The demonstrations' lines, then the question and its suffix, after ``images`` images."""
    return TrainingTurn(images, "\n".join([*demo_lines, question + suffix]))
