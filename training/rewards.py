"""RePIC's verifiable rewards, one per sample and each in [0, 1].

* OCT (object consistency): the answer's yes/no must equal the label.
* VLT (visual localization): the first box in the answer must overlap the ground truth with
  IoU >= a threshold (0.5 in the paper).
* ICT (identity consistency): the answer must name the concept(s) as ``<name>``, be at least
  100 characters long, and must not contain a closing ``</name>`` tag (the policy learns to
  emit ``<bo></bo>`` to game a plain substring check).

``reference_compat`` (the default of a run) parses answers exactly as the reference's training
script: OCT takes the first ``yes``/``no`` substring; VLT the first ``[a, b, c, d]`` of
non-negative integers, scored with its IoU formula (the intersection counts inclusive pixels,
``x2 - 1``, the areas do not); ICT looks for ``<name>`` case-sensitively in the raw answer
(length counted unstripped), and only a single-concept row is zeroed by ``</name>``. Without
it the stricter rules above apply (whole words, decimal boxes, case-insensitive names,
``</name>`` zeroes every row).

The ``score_*`` functions judge one answer. ``oct_reward``/``vlt_reward``/``ict_reward`` are the
TRL ``GRPOTrainer`` reward functions: they read the per-row dataset columns ``task``, ``label``,
``bbox`` and ``names`` from keyword arguments and return ``None`` for rows of another task, so
each reward's mean is logged over its own rows only.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from model.prompt import bracket_name

DEFAULT_IOU_THRESHOLD = 0.5
DEFAULT_MIN_CHARS = 100

_YES_NO_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_YES_NO_SUBSTRING = re.compile(r"yes|no", re.IGNORECASE)
_NUMBER = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
# The first bracketed run of exactly four numbers: a plain ``[x1, y1, x2, y2]`` and the value of
# Qwen2.5-VL's ``{"bbox_2d": [...]}`` (fenced or not, alone or in a list) both match it.
_BOX = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
_REFERENCE_BOX = re.compile(r"\[(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\]")

Box = tuple[float, float, float, float]
RewardFunc = Callable[..., list[float | None]]


class Task(StrEnum):
    """The three kinds of training sample, stored in each row's ``task`` column."""

    OCT = "oct"
    VLT = "vlt"
    ICT = "ict"


def parse_yes_no(answer: str, *, reference_compat: bool = False) -> str | None:
    """The answer's first ``yes``/``no`` as a whole word (``"yes"``, ``"no"`` or ``None``).

    ``reference_compat`` reproduces the paper's code, which took the first *substring*: there
    ``"not"`` and ``"nobody"`` read as no and ``"yesterday"`` as yes.
    """
    pattern = _YES_NO_SUBSTRING if reference_compat else _YES_NO_WORD
    found = pattern.search(answer)
    return found.group(0).lower() if found else None


def score_oct(answer: str, label: str, *, reference_compat: bool = False) -> float:
    """1.0 when the answer's yes/no equals ``label`` (``"yes"`` or ``"no"``), else 0.0."""
    expected = label.strip().lower()
    if expected not in ("yes", "no"):
        raise ValueError(f"An OCT label must be 'yes' or 'no', got {label!r}.")
    return 1.0 if parse_yes_no(answer, reference_compat=reference_compat) == expected else 0.0


def parse_first_box(answer: str) -> Box | None:
    """The first ``[x1, y1, x2, y2]`` in the answer, or ``None`` when there is none."""
    found = _BOX.search(answer)
    if found is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in found.groups())
    return x1, y1, x2, y2


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; 0.0 if either is degenerate."""
    if not (_is_proper(a) and _is_proper(b)):
        return 0.0
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def reference_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The reference script's IoU: the intersection spans ``max(x1)..min(x2) - 1`` inclusive
    (``+ 1`` pixels) when non-empty, the areas are ``(x2 - x1) * (y2 - y1)``, and the union is
    at least 1."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2] - 1, b[2] - 1), min(a[3] - 1, b[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    area_a = max(0, a[2] - a[0]) * max(0, a[3] - a[1])
    area_b = max(0, b[2] - b[0]) * max(0, b[3] - b[1])
    return float(inter) / float(max(1, area_a + area_b - inter))


def score_vlt(
    answer: str,
    target: Sequence[float],
    *,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    reference_compat: bool = False,
) -> float:
    """1.0 when the answer's first box has IoU >= ``iou_threshold`` with ``target``, else 0.0."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}.")
    if len(target) != 4:
        raise ValueError(f"A VLT target box needs 4 numbers, got {list(target)!r}.")
    if reference_compat:
        found = _REFERENCE_BOX.search(answer)
        if found is None:
            return 0.0
        integers = [int(v) for v in found.groups()]
        return 1.0 if reference_iou(integers, target) >= iou_threshold else 0.0
    box = parse_first_box(answer)
    if box is None:
        return 0.0
    return 1.0 if box_iou(box, target) >= iou_threshold else 0.0


def score_ict(
    answer: str,
    names: Sequence[str],
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    reference_compat: bool = False,
) -> float:
    """Fraction of ``names`` the answer mentions as ``<name>`` (1.0 or 0.0 for a single name).

    Zero when the answer is shorter than ``min_chars`` characters (stripped) or closes any of the
    names with a ``</name>`` tag. Names match case-insensitively, with or without brackets given.
    ``reference_compat``: see the module docstring.
    """
    if not names:
        raise ValueError("An ICT sample needs at least one ground-truth name.")
    if reference_compat:
        tags = [bracket_name(n) for n in names]
        if len(answer) < min_chars:
            return 0.0
        if len(tags) == 1 and "</" + tags[0][1:] in answer:
            return 0.0
        return sum(tag in answer for tag in tags) / len(tags)
    wanted = list(dict.fromkeys(bracket_name(n).lower() for n in names))
    text = answer.strip().lower()
    if len(text) < min_chars:
        return 0.0
    if any("</" + name[1:] in text for name in wanted):
        return 0.0
    return sum(name in text for name in wanted) / len(wanted)


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The text of a TRL completion: a plain string or conversational messages.

    For messages the last assistant turn counts; its content may be a string or a list of
    ``{"type": "text", "text": ...}`` parts.
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return "".join(
                str(part.get("text") or "")
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
    return ""


def oct_reward(
    completions: Sequence[Any], *, reference_compat: bool = False, **kwargs: Any
) -> list[float | None]:
    """TRL reward for OCT rows (column ``label``); ``None`` for other rows."""
    return [
        score_oct(completion_text(c), label, reference_compat=reference_compat)
        if task == Task.OCT
        else None
        for c, task, label in _rows(completions, kwargs, "label")
    ]


def vlt_reward(
    completions: Sequence[Any],
    *,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    reference_compat: bool = False,
    **kwargs: Any,
) -> list[float | None]:
    """TRL reward for VLT rows (column ``bbox``); ``None`` for other rows."""
    return [
        score_vlt(
            completion_text(c),
            bbox,
            iou_threshold=iou_threshold,
            reference_compat=reference_compat,
        )
        if task == Task.VLT
        else None
        for c, task, bbox in _rows(completions, kwargs, "bbox")
    ]


def ict_reward(
    completions: Sequence[Any],
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    reference_compat: bool = False,
    **kwargs: Any,
) -> list[float | None]:
    """TRL reward for ICT rows (column ``names``); ``None`` for other rows."""
    return [
        score_ict(completion_text(c), names, min_chars=min_chars, reference_compat=reference_compat)
        if task == Task.ICT
        else None
        for c, task, names in _rows(completions, kwargs, "names")
    ]


def reward_functions(
    *,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    min_chars: int = DEFAULT_MIN_CHARS,
    reference_compat: bool = True,
) -> list[RewardFunc]:
    """The three rewards configured for a run; partials keep their names for TRL's logs.

    ``reference_compat`` (default, as a run's) parses answers as the reference script does."""
    compat = reference_compat
    return [
        functools.partial(oct_reward, reference_compat=compat),
        functools.partial(vlt_reward, iou_threshold=iou_threshold, reference_compat=compat),
        functools.partial(ict_reward, min_chars=min_chars, reference_compat=compat),
    ]


def _rows(
    completions: Sequence[Any], columns: Mapping[str, Any], column: str
) -> list[tuple[Any, str, Any]]:
    tasks = columns.get("task")
    values = columns.get(column)
    if tasks is None or values is None:
        raise ValueError(f"The dataset needs the columns 'task' and {column!r} for RePIC rewards.")
    if not len(tasks) == len(values) == len(completions):
        raise ValueError(
            f"{len(completions)} completions but {len(tasks)} 'task' and {len(values)} "
            f"{column!r} values; every row needs one of each."
        )
    return list(zip(completions, tasks, values, strict=True))


def _is_proper(box: Sequence[float]) -> bool:
    return (
        len(box) == 4 and all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1]
    )
