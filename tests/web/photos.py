"""Synthetic photos for the browser tests: a sky, a ground, a sun and a subject, per seed."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw


def scene(seed: int, size: tuple[int, int] = (480, 360)) -> bytes:
    """A deterministic outdoor-looking JPEG: distinct colours and subject per seed."""
    rng = random.Random(seed)
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizon = int(height * rng.uniform(0.55, 0.7))
    top = (rng.randint(60, 120), rng.randint(120, 180), rng.randint(200, 250))
    for y in range(horizon):
        t = y / horizon
        draw.line([(0, y), (width, y)], fill=tuple(int(c + (255 - c) * t * 0.6) for c in top))
    ground = (rng.randint(40, 120), rng.randint(110, 170), rng.randint(40, 90))
    draw.rectangle([0, horizon, width, height], fill=ground)
    sun_x = rng.randint(40, width - 40)
    draw.ellipse([sun_x - 28, 24, sun_x + 28, 80], fill=(255, 226, 120))
    colour = (rng.randint(90, 240), rng.randint(40, 160), rng.randint(20, 120))
    cx, cy = rng.randint(width // 4, 3 * width // 4), horizon + rng.randint(-20, 20)
    w, h = rng.randint(80, 150), rng.randint(60, 110)
    draw.ellipse([cx - w // 2, cy - h, cx + w // 2, cy], fill=colour)
    draw.ellipse([cx + w // 3, cy - h - 30, cx + w // 3 + 56, cy - h + 24], fill=colour)
    draw.ellipse([cx + w // 3 + 30, cy - h - 12, cx + w // 3 + 40, cy - h - 2], fill=(20, 20, 20))
    for leg in (-w // 3, -w // 8, w // 8, w // 3):
        draw.rectangle([cx + leg - 6, cy - 8, cx + leg + 6, cy + 24], fill=colour)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()
