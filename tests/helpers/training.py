"""A synthetic RAP-style concept database for training-data tests and timings.

Each concept is a coloured shape with its own texture on its own background colour; its photos
differ in position, size and rotation. Run as a script to write one::

    python -m tests.helpers.training OUT_DIR --concepts 30 --images 3
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ("dog", "cat", "toy", "mug", "person")
_SHAPES = ("ellipse", "rectangle", "triangle")


def make_concept_database(
    root: Path,
    *,
    concepts: int = 30,
    images_per_concept: int = 3,
    size: tuple[int, int] = (800, 600),
    seed: int = 0,
) -> Path:
    """Write ``concepts`` concepts' photos under ``root`` and return ``root/database.json``."""
    rng = random.Random(seed)
    entries = {}
    for i in range(concepts):
        name = f"c{i:02d}"
        look = (rng.choice(_SHAPES), _colour(rng), _colour(rng), rng.randint(2, 12))
        paths = []
        for j in range(images_per_concept):
            relative = f"{name}/{j}.jpg"
            (root / name).mkdir(parents=True, exist_ok=True)
            _photo(look, size, rng).save(root / relative, format="JPEG", quality=90)
            paths.append(relative)
        entries[f"<{name}>"] = {
            "name": name,
            "image": paths if images_per_concept > 1 else paths[0],
            "info": f"{name} is a {look[0]}-shaped thing with stripes every {look[3]} px.",
            "category": CATEGORIES[i % len(CATEGORIES)],
        }
    database = root / "database.json"
    database.write_text(json.dumps({"concept_dict": entries}, indent=1), encoding="utf-8")
    return database


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def _photo(
    look: tuple[str, tuple[int, int, int], tuple[int, int, int], int],
    size: tuple[int, int],
    rng: random.Random,
) -> Image.Image:
    shape, fill, background, stripe = look
    noise = np.random.default_rng(rng.randint(0, 2**32 - 1)).integers(0, 40, (*size[::-1], 3))
    base = np.clip(np.array(background, dtype=np.int64) + noise - 20, 0, 255).astype(np.uint8)
    img = Image.fromarray(base, mode="RGB")
    w, h = size
    side = rng.uniform(0.35, 0.7) * min(size)
    x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
    draw = ImageDraw.Draw(img)
    box = (x, y, x + side, y + side)
    if shape == "ellipse":
        draw.ellipse(box, fill=fill)
    elif shape == "rectangle":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x + side / 2, y), (x, y + side), (x + side, y + side)], fill=fill)
    for k in range(int(x), int(x + side), stripe * 2):
        draw.line([(k, y), (k, y + side)], fill=(255 - fill[0], 255 - fill[1], 255 - fill[2]))
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--concepts", type=int, default=30)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = make_concept_database(
        args.out, concepts=args.concepts, images_per_concept=args.images, seed=args.seed
    )
    print(path)


if __name__ == "__main__":
    main()
