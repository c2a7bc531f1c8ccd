"""The GRPO dataset: OCT, VLT and ICT samples, written as JSONL.

By default each row's prompt is RePIC's training prompt (:mod:`training.prompts`: no system
message, all images first, one text part with the per-task suffix). With
``prompt_style="inference"`` it is the prompt the service captions with instead
(:func:`model.prompt.build_repic_messages`: the concept's reference photo(s) as interleaved,
numbered demonstrations, the query image last).

* OCT: one reference, a query that does (another photo or view of it) or does not (another
  concept, of the same category when there is one) contain the concept; labels are balanced.
* VLT: the concept pasted onto another concept's photo at a known box; the answer is JSON.
* ICT: single concept (another view of it, sometimes beside a distractor demo) or a collage of
  2-4 concepts; every concept is renamed to a made-up first name, in its info text too, so the
  name can only be read off the demonstration, never remembered from pre-training.

Layout of the output folder: ``train.jsonl`` (one row per sample), ``images/`` (JPEGs named by
content hash, so a reference shared by many rows is stored once), ``manifest.json`` (counts) and
``preview.png``. Each row holds a conversational ``prompt`` whose image parts are placeholders
(``{"type": "image"}``) filled in order from the row's ``images`` list, which is what TRL's
``GRPOTrainer`` takes; the columns ``task``, ``label``, ``bbox`` and ``names`` feed the rewards.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from model.images import NormalizedImage, normalize_image
from model.prompt import (
    Demo,
    ImagePart,
    RepicPrompt,
    bracket_name,
    build_repic_messages,
    demo_text,
)
from training import composite
from training.concepts import Concept, person_like_names, rename_in_text
from training.preview import pick_preview_rows, render_preview
from training.prompts import (
    ICT_QUESTION,
    OCT_QUESTION,
    OCT_SUFFIX,
    VLT_QUESTION,
    VLT_SUFFIX,
    PromptStyle,
    TrainingTurn,
    ict_suffix,
    reference_turn,
)
from training.rewards import Task

DATA_FILE = "train.jsonl"
MANIFEST_FILE = "manifest.json"
PREVIEW_FILE = "preview.png"
IMAGE_DIR = "images"
_SOURCE_MAX_PIXELS = 80_000_000

OCT_INSTRUCTION = "Is {name} in this image? Answer yes or no."
VLT_INSTRUCTION = "Locate {name} in the image. Output its bbox coordinates using JSON format."


@dataclass(frozen=True)
class DataConfig:
    """How many samples of which kind, and how images are sized and stored."""

    samples: int = 2000
    seed: int = 0
    oct_share: float = 1.0
    vlt_share: float = 1.0
    ict_share: float = 1.0
    multi_share: float = 0.3
    max_collage: int = 2
    distractor_share: float = 0.5
    image_side: int = 448
    jpeg_quality: int = 85
    prompt_style: PromptStyle = PromptStyle.REFERENCE

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}.")
        shares = (self.oct_share, self.vlt_share, self.ict_share)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError(f"The task shares must be >= 0 and not all 0, got {shares}.")
        for field in ("multi_share", "distractor_share"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{field} must be between 0 and 1, got {getattr(self, field)}.")
        if not 2 <= self.max_collage <= 4:
            raise ValueError(f"max_collage must be between 2 and 4, got {self.max_collage}.")
        if not 112 <= self.image_side <= 2048:
            raise ValueError(f"image_side must be between 112 and 2048, got {self.image_side}.")
        if not 30 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be between 30 and 95, got {self.jpeg_quality}.")

    def task_counts(self) -> dict[Task, int]:
        """Split ``samples`` by the shares (largest remainder, so the counts add up)."""
        shares = {Task.OCT: self.oct_share, Task.VLT: self.vlt_share, Task.ICT: self.ict_share}
        total = sum(shares.values())
        exact = {t: self.samples * s / total for t, s in shares.items()}
        counts = {t: int(v) for t, v in exact.items()}
        by_remainder = sorted(shares, key=lambda t: exact[t] - counts[t], reverse=True)
        for task in by_remainder[: self.samples - sum(counts.values())]:
            counts[task] += 1
        return counts


@dataclass(frozen=True)
class Sample:
    """One training prompt and what its reward checks."""

    task: Task
    prompt: RepicPrompt
    turn: TrainingTurn
    turn_images: tuple[NormalizedImage, ...]
    label: str | None = None
    bbox: list[int] | None = None
    names: list[str] | None = None

    @property
    def answer(self) -> str:
        """The verifiable target, as text (for previews and reading the data)."""
        if self.label is not None:
            return self.label
        if self.bbox is not None:
            return json.dumps({"bbox_2d": self.bbox})
        return "mentions " + ", ".join(bracket_name(n) for n in self.names or ())


def build_dataset(concepts: Sequence[Concept], out_dir: Path, config: DataConfig) -> dict[str, Any]:
    """Write the dataset for ``concepts`` into the empty folder ``out_dir``; return the manifest."""
    if len(concepts) < 2:
        raise ValueError("Building data needs at least 2 concepts.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; choose a new or empty output folder.")
    (out_dir / IMAGE_DIR).mkdir(parents=True)
    rng = random.Random(config.seed)  # noqa: S311 - reproducible data, not secrets
    maker = _SampleMaker(list(concepts), config, rng)
    rows: list[dict[str, Any]] = []
    with (out_dir / DATA_FILE).open("w", encoding="utf-8") as sink:
        for index, (task, positive) in enumerate(_schedule(config, rng)):
            sample = maker.make(task, positive)
            row = sample_row(f"{task}-{index:05d}", sample, out_dir, config.prompt_style)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows.append(row)
    manifest = _manifest(rows, concepts, config, out_dir)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shown = [
        {**row, "images": [str(out_dir / p) for p in row["images"]]}
        for row in pick_preview_rows(rows)
    ]
    render_preview(shown, out_dir / PREVIEW_FILE)
    return manifest


def read_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``train.jsonl`` with image paths resolved against ``data_dir``."""
    rows = []
    with (data_dir / DATA_FILE).open(encoding="utf-8") as source:
        for line in source:
            row = json.loads(line)
            row["images"] = [str(data_dir / p) for p in row["images"]]
            rows.append(row)
    return rows


def _schedule(config: DataConfig, rng: random.Random) -> list[tuple[Task, bool]]:
    """Every sample's task, with exactly half of the OCT samples (rounded up) positive."""
    counts = config.task_counts()
    plan = [(Task.OCT, i < (counts[Task.OCT] + 1) // 2) for i in range(counts[Task.OCT])]
    plan += [(Task.VLT, True)] * counts[Task.VLT] + [(Task.ICT, True)] * counts[Task.ICT]
    rng.shuffle(plan)
    return plan


class _SampleMaker:
    def __init__(self, concepts: list[Concept], config: DataConfig, rng: random.Random) -> None:
        self._concepts = concepts
        self._config = config
        self._rng = rng
        self._cache: dict[Path, NormalizedImage] = {}
        self._pil: dict[Path, Image.Image] = {}

    def make(self, task: Task, positive: bool) -> Sample:
        if task is Task.OCT:
            return self._oct(positive)
        if task is Task.VLT:
            return self._vlt()
        multi = self._rng.random() < self._config.multi_share
        return self._ict_multi() if multi else self._ict_single()

    def _oct(self, positive: bool) -> Sample:
        concept = self._rng.choice(self._concepts)
        demo_path, other_path = self._two_photos(concept)
        if positive:
            query = self._view(other_path, always_crop=other_path == demo_path)
        else:
            negative = self._other_concept(concept, prefer_same_category=True)
            query = self._view(self._rng.choice(negative.images))
        demo = Demo(concept.name, concept.info, self._reference(demo_path))
        name = bracket_name(concept.name)
        prompt = build_repic_messages([demo], query, instruction=OCT_INSTRUCTION.format(name=name))
        turn = reference_turn(
            [demo_text(1, demo.name, demo.info)], 2, OCT_QUESTION.format(name=name), OCT_SUFFIX
        )
        label = "yes" if positive else "no"
        return Sample(Task.OCT, prompt, turn, (demo.image, query), label=label)

    def _vlt(self) -> Sample:
        concept = self._rng.choice(self._concepts)
        demo_path, object_path = self._two_photos(concept)
        size = composite.canvas_size(self._rng, self._config.image_side)
        backdrop = self._photo(self._rng.choice(self._other_concept(concept).images))
        canvas, placed = composite.paste_object(
            composite.cover(backdrop, size, self._rng), self._photo(object_path), self._rng
        )
        demo = Demo(concept.name, concept.info, self._reference(demo_path))
        query = self._encode(canvas)
        name = bracket_name(concept.name)
        prompt = build_repic_messages([demo], query, instruction=VLT_INSTRUCTION.format(name=name))
        # The reference's box route takes one image: the query; the concept is known by its text.
        turn = reference_turn(
            [demo_text(1, demo.name, demo.info)], 1, VLT_QUESTION.format(name=name), VLT_SUFFIX
        )
        return Sample(Task.VLT, prompt, turn, (query,), bbox=placed.box)

    def _ict_single(self) -> Sample:
        concept = self._rng.choice(self._concepts)
        demo_path, other_path = self._two_photos(concept)
        shown = [concept]
        if self._rng.random() < self._config.distractor_share:
            shown.append(self._other_concept(concept))
        names = dict(zip(shown, self._stand_in_names(len(shown)), strict=True))
        demos = [self._demo(c, names[c], demo_path if c is concept else None) for c in shown]
        self._rng.shuffle(demos)
        query = self._view(other_path, always_crop=other_path == demo_path)
        return self._ict(demos, query, [names[concept]])

    def _ict_multi(self) -> Sample:
        k = self._rng.randint(2, self._config.max_collage)
        chosen = self._rng.sample(self._concepts, k)
        names = self._stand_in_names(k)
        pairs = [self._two_photos(c) for c in chosen]
        demos = [
            self._demo(c, n, demo) for c, n, (demo, _) in zip(chosen, names, pairs, strict=True)
        ]
        self._rng.shuffle(demos)
        tiles = [composite.random_view(self._photo(query), self._rng) for _, query in pairs]
        self._rng.shuffle(tiles)
        tile_side = max(4, self._config.image_side // 2 // composite.QWEN_UNIT)
        query = composite.collage(tiles, tile_side * composite.QWEN_UNIT, self._rng)
        return self._ict(demos, self._encode(query), names)

    def _ict(self, demos: list[Demo], query: NormalizedImage, names: list[str]) -> Sample:
        lines = [demo_text(i, d.name, d.info) for i, d in enumerate(demos, start=1)]
        turn = reference_turn(lines, len(demos) + 1, ICT_QUESTION, ict_suffix(self._rng))
        images = (*(d.image for d in demos), query)
        return Sample(Task.ICT, build_repic_messages(demos, query), turn, images, names=names)

    def _demo(self, concept: Concept, name: str, path: Path | None) -> Demo:
        info = rename_in_text(concept.info, concept.name, name)
        if concept.display_name:
            # A display name left in the info would let the model recall the real concept.
            info = rename_in_text(info, concept.display_name, name)
        return Demo(name, info, self._reference(path or self._rng.choice(concept.images)))

    def _stand_in_names(self, count: int) -> list[str]:
        taken = [n for c in self._concepts for n in (c.name, c.display_name) if n]
        return person_like_names(self._rng, count, avoid=taken)

    def _two_photos(self, concept: Concept) -> tuple[Path, Path]:
        """A demonstration photo and, when the concept has one, a different query photo."""
        if len(concept.images) == 1:
            return concept.images[0], concept.images[0]
        first, second = self._rng.sample(concept.images, 2)
        return first, second

    def _other_concept(self, concept: Concept, *, prefer_same_category: bool = False) -> Concept:
        others = [c for c in self._concepts if c is not concept]
        alike = [c for c in others if concept.category and c.category == concept.category]
        if prefer_same_category and alike and self._rng.random() < 0.5:
            return self._rng.choice(alike)
        return self._rng.choice(others)

    def _view(self, path: Path, *, always_crop: bool = False) -> NormalizedImage:
        """The photo itself or a random crop of it (always a crop when the demo shows the photo).

        Otherwise half of all queries, negatives included, are crops: a crop gives little away.
        """
        if not always_crop and self._rng.random() < 0.5:
            return self._reference(path)
        return self._encode(composite.random_view(self._photo(path), self._rng))

    def _reference(self, path: Path) -> NormalizedImage:
        if path not in self._cache:
            self._cache[path] = normalize_image(
                path.read_bytes(),
                max_pixels=_SOURCE_MAX_PIXELS,
                max_side=self._config.image_side,
            )
        return self._cache[path]

    def _photo(self, path: Path) -> Image.Image:
        if path not in self._pil:
            self._pil[path] = self._reference(path).to_pil()
        return self._pil[path]

    def _encode(self, img: Image.Image) -> NormalizedImage:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self._config.jpeg_quality)
        return NormalizedImage(data=buf.getvalue(), width=img.width, height=img.height)


def sample_row(row_id: str, sample: Sample, out_dir: Path, style: PromptStyle) -> dict[str, Any]:
    """One ``train.jsonl`` row of ``sample``; its images are written under ``out_dir``."""
    if style is PromptStyle.REFERENCE:
        images = [_store(img, out_dir) for img in sample.turn_images]
        prompt = sample.turn.messages()
    else:
        images = [_store(img, out_dir) for img in sample.prompt.images]
        user = [
            {"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
            for p in sample.prompt.parts
        ]
        prompt = [
            {"role": "system", "content": [{"type": "text", "text": sample.prompt.system}]},
            {"role": "user", "content": user},
        ]
    return {
        "id": row_id,
        "task": str(sample.task),
        "prompt": prompt,
        "images": images,
        "label": sample.label,
        "bbox": sample.bbox,
        "names": sample.names,
        "answer": sample.answer,
    }


def _store(image: NormalizedImage, out_dir: Path) -> str:
    relative = f"{IMAGE_DIR}/{image.sha256[:20]}.jpg"
    target = out_dir / relative
    if not target.exists():
        target.write_bytes(image.data)
    return relative


def _manifest(
    rows: list[dict[str, Any]], concepts: Sequence[Concept], config: DataConfig, out_dir: Path
) -> dict[str, Any]:
    image_files = list((out_dir / IMAGE_DIR).iterdir())
    return {
        "samples": len(rows),
        "counts": {str(t): sum(row["task"] == t for row in rows) for t in Task},
        "oct_labels": dict(Counter(row["label"] for row in rows if row["task"] == Task.OCT)),
        "ict_concepts": dict(
            Counter(str(len(row["names"])) for row in rows if row["task"] == Task.ICT)
        ),
        "concepts": len(concepts),
        "image_files": len(image_files),
        "image_bytes": sum(p.stat().st_size for p in image_files),
        "config": asdict(config),
    }
