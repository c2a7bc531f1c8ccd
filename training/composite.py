"""Image operations that make training queries with known content: views, pastes, collages.

Canvas sides are multiples of 28 (Qwen2.5-VL's patch merge unit): the processor then keeps the
image at its size, so a box in the canvas' pixels is a box in the frame the model answers in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageOps

QWEN_UNIT = 28
_CANVAS_SHAPES = ((16, 16), (20, 15), (15, 20), (18, 14), (14, 18))  # in units of 28 pixels


@dataclass(frozen=True)
class Placement:
    """Where a pasted object landed, in canvas pixels (x2/y2 exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def box(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


def canvas_size(rng: random.Random, side: int) -> tuple[int, int]:
    """A random canvas shape whose longer side is about ``side``, both sides multiples of 28."""
    cols, rows = rng.choice(_CANVAS_SHAPES)
    scale = side / (max(cols, rows) * QWEN_UNIT)
    return (
        max(2, round(cols * scale)) * QWEN_UNIT,
        max(2, round(rows * scale)) * QWEN_UNIT,
    )


def cover(img: Image.Image, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Scale ``img`` to cover ``size`` and crop a random window of exactly that size."""
    scale = max(size[0] / img.width, size[1] / img.height)
    scaled = img.resize(
        (max(size[0], round(img.width * scale)), max(size[1], round(img.height * scale))),
        Image.Resampling.BILINEAR,
    )
    left = rng.randint(0, scaled.width - size[0])
    top = rng.randint(0, scaled.height - size[1])
    return scaled.crop((left, top, left + size[0], top + size[1]))


def random_view(img: Image.Image, rng: random.Random) -> Image.Image:
    """Another look at the same photo: a crop keeping 70-95 % of each side, maybe mirrored."""
    keep = rng.uniform(0.7, 0.95)
    w, h = max(1, round(img.width * keep)), max(1, round(img.height * keep))
    left, top = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
    view = img.crop((left, top, left + w, top + h))
    return ImageOps.mirror(view) if rng.random() < 0.5 else view


def paste_object(
    background: Image.Image,
    obj: Image.Image,
    rng: random.Random,
    *,
    min_share: float = 0.25,
    max_share: float = 0.6,
) -> tuple[Image.Image, Placement]:
    """Paste ``obj`` (aspect kept) at a random place; its longer side is a share of the canvas."""
    canvas = background.copy()
    longest = rng.uniform(min_share, max_share) * min(canvas.size)
    scale = longest / max(obj.size)
    w, h = max(8, round(obj.width * scale)), max(8, round(obj.height * scale))
    x, y = rng.randint(0, canvas.width - w), rng.randint(0, canvas.height - h)
    canvas.paste(obj.resize((w, h), Image.Resampling.BILINEAR), (x, y))
    return canvas, Placement(x, y, x + w, y + h)


def collage(tiles: list[Image.Image], tile_side: int, rng: random.Random) -> Image.Image:
    """Two tiles side by side, or up to four in a 2x2 grid (empty cells stay grey)."""
    if not 2 <= len(tiles) <= 4:
        raise ValueError(f"A collage takes 2 to 4 tiles, got {len(tiles)}.")
    cols, rows = (2, 1) if len(tiles) == 2 else (2, 2)
    sheet = Image.new("RGB", (cols * tile_side, rows * tile_side), (128, 128, 128))
    for i, tile in enumerate(tiles):
        cell = cover(tile, (tile_side, tile_side), rng)
        sheet.paste(cell, ((i % cols) * tile_side, (i // cols) * tile_side))
    return sheet
