"""Training samples from users' corrections, in the layout `repic train build-data` writes.

Each correction of a kept caption becomes samples for the paper's verifiable rewards:

* ICT: the kept photo as query, the user's demonstrations of the concepts confirmed present
  (and of those marked wrongly named, as distractors); the reward wants every present name.
* OCT: one yes/no sample per concept, ``yes`` for one confirmed present, ``no`` for one marked
  wrongly named; the demonstration is a reference photo of the concept other than the kept one.
* VLT: one sample per photo taught with a box: the box is the answer.

Unlike `build-data`, names are the users' own (the point is to learn these concepts), and
images keep their content (scaled to ``image_side``; boxes scaled with them). A case whose
answer cannot be checked (no concept confirmed, a concept deleted since, no other reference
photo for an OCT demonstration) is skipped and counted.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from model.images import NormalizedImage, normalize_image
from model.prompt import Demo, bracket_name, build_repic_messages, demo_text
from training.data import (
    DATA_FILE,
    IMAGE_DIR,
    MANIFEST_FILE,
    OCT_INSTRUCTION,
    VLT_INSTRUCTION,
    Sample,
    sample_row,
)
from training.prompts import (
    ICT_QUESTION,
    OCT_QUESTION,
    OCT_SUFFIX,
    VLT_QUESTION,
    VLT_SUFFIX,
    PromptStyle,
    ict_suffix,
    reference_turn,
)
from training.rewards import Task

_SOURCE_MAX_PIXELS = 80_000_000


@dataclass(frozen=True)
class FeedbackConcept:
    """A concept as the correction's owner keeps it: name, info, one reference photo (or
    ``None`` when it has no photo besides the ones taught from this caption)."""

    name: str
    info: str
    photo: bytes | None


@dataclass(frozen=True)
class FeedbackCase:
    """One corrected caption: its photo, the concepts confirmed and refused, taught boxes."""

    case_id: str
    photo: bytes
    present: Sequence[FeedbackConcept] = ()
    wrong: Sequence[FeedbackConcept] = ()
    boxes: Sequence[tuple[FeedbackConcept, Sequence[int]]] = ()


@dataclass
class ExportReport:
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def export_feedback(
    cases: Sequence[FeedbackCase],
    out_dir: Path,
    *,
    image_side: int = 448,
    seed: int = 0,
    style: PromptStyle = PromptStyle.REFERENCE,
    skipped: Counter[str] | None = None,
) -> dict[str, Any]:
    """Write the samples of ``cases`` into the empty folder ``out_dir``; return the manifest
    (``counts`` per kind, ``skipped`` per reason, merged with the caller's ``skipped``)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; choose a new or empty output folder.")
    (out_dir / IMAGE_DIR).mkdir(parents=True)
    rng = random.Random(seed)  # noqa: S311 - reproducible suffixes, not secrets
    report = ExportReport(skipped=Counter(skipped or {}))
    rows: list[dict[str, Any]] = []
    for case in cases:
        for sample in _samples(case, image_side, rng, report):
            row_id = f"{sample.task}-{case.case_id}-{len(rows):05d}"
            rows.append(sample_row(row_id, sample, out_dir, style))
            report.counts[str(sample.task)] += 1
    with (out_dir / DATA_FILE).open("w", encoding="utf-8") as sink:
        for row in rows:
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    image_files = list((out_dir / IMAGE_DIR).iterdir())
    manifest = {
        "source": "feedback",
        "samples": len(rows),
        "counts": {str(t): report.counts[str(t)] for t in Task},
        "oct_labels": dict(Counter(r["label"] for r in rows if r["task"] == Task.OCT)),
        "skipped": dict(report.skipped),
        "cases": len(cases),
        "image_files": len(image_files),
        "image_bytes": sum(p.stat().st_size for p in image_files),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _samples(
    case: FeedbackCase, side: int, rng: random.Random, report: ExportReport
) -> list[Sample]:
    query = normalize_image(case.photo, max_pixels=_SOURCE_MAX_PIXELS, max_side=side)
    samples: list[Sample] = []
    demos: dict[str, Demo] = {}
    for concept in [*case.present, *case.wrong]:
        if concept.photo is None:
            report.skipped["concept without another photo"] += 1
            continue
        image = normalize_image(concept.photo, max_pixels=_SOURCE_MAX_PIXELS, max_side=side)
        demos[concept.name] = Demo(concept.name, concept.info, image)
    for concept, label in [*((c, "yes") for c in case.present), *((c, "no") for c in case.wrong)]:
        if concept.name in demos:
            samples.append(_oct(demos[concept.name], query, label))
    present = [c.name for c in case.present if c.name in demos]
    if present and len(present) == len(case.present):
        shown = [demos[n] for n in demos]
        rng.shuffle(shown)
        samples.append(_ict(shown, query, present, rng))
    elif case.present:
        report.skipped["ict without every present concept"] += 1
    scale = query.width / _width(case.photo)
    for concept, box in case.boxes:
        demo = demos.get(concept.name) or Demo(concept.name, concept.info, query)
        samples.append(_vlt(demo, query, [round(v * scale) for v in box]))
    if not samples:
        report.skipped["nothing verifiable"] += 1
    return samples


def _oct(demo: Demo, query: NormalizedImage, label: str) -> Sample:
    name = bracket_name(demo.name)
    prompt = build_repic_messages([demo], query, instruction=OCT_INSTRUCTION.format(name=name))
    turn = reference_turn(
        [demo_text(1, demo.name, demo.info)], 2, OCT_QUESTION.format(name=name), OCT_SUFFIX
    )
    return Sample(Task.OCT, prompt, turn, (demo.image, query), label=label)


def _ict(demos: list[Demo], query: NormalizedImage, names: list[str], rng: random.Random) -> Sample:
    lines = [demo_text(i, d.name, d.info) for i, d in enumerate(demos, start=1)]
    turn = reference_turn(lines, len(demos) + 1, ICT_QUESTION, ict_suffix(rng))
    images = (*(d.image for d in demos), query)
    return Sample(Task.ICT, build_repic_messages(demos, query), turn, images, names=names)


def _vlt(demo: Demo, query: NormalizedImage, box: list[int]) -> Sample:
    name = bracket_name(demo.name)
    prompt = build_repic_messages([demo], query, instruction=VLT_INSTRUCTION.format(name=name))
    # The reference's box route takes one image, the query; the concept is known by its text.
    turn = reference_turn(
        [demo_text(1, demo.name, demo.info)], 1, VLT_QUESTION.format(name=name), VLT_SUFFIX
    )
    return Sample(Task.VLT, prompt, turn, (query,), bbox=box)


def _width(photo: bytes) -> int:
    """The kept photo's width (boxes are in its pixels; kept photos are already upright)."""
    with Image.open(io.BytesIO(photo)) as img:
        return int(img.width)
