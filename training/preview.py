"""A contact sheet of a few dataset rows: their images, prompt texts and expected answers."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

CELL_WIDTH = 720
THUMB_HEIGHT = 120
_LINE_HEIGHT = 14
_WRAP = 100


def pick_preview_rows(rows: Sequence[dict[str, Any]], per_task: int = 2) -> list[dict[str, Any]]:
    """The first ``per_task`` rows of each task, in dataset order."""
    seen: dict[str, int] = {}
    picked = []
    for row in rows:
        if seen.get(row["task"], 0) < per_task:
            seen[row["task"]] = seen.get(row["task"], 0) + 1
            picked.append(row)
    return picked


def render_preview(rows: Sequence[dict[str, Any]], target: Path, *, columns: int = 2) -> None:
    """Draw ``rows`` (image paths resolved) into a grid PNG at ``target``.

    A VLT row's ground-truth box is drawn on its query image, so a wrong box is visible at once.
    """
    cells = [_cell(row) for row in rows]
    if not cells:
        raise ValueError("There are no rows to preview.")
    cell_height = max(c.height for c in cells)
    grid_rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * CELL_WIDTH, grid_rows * cell_height), "white")
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % columns) * CELL_WIDTH, (i // columns) * cell_height))
    sheet.save(target, format="PNG", optimize=True)


def _cell(row: dict[str, Any]) -> Image.Image:
    lines = [f"[{row['task']}] {row['id']}"]
    for part in row["prompt"][-1]["content"]:
        if part.get("type") == "text":
            lines += textwrap.wrap(part["text"], _WRAP) or [""]
    lines += textwrap.wrap(f"expected: {row['answer']}", _WRAP)
    height = THUMB_HEIGHT + 12 + _LINE_HEIGHT * len(lines) + 8
    cell = Image.new("RGB", (CELL_WIDTH, height), "white")
    draw = ImageDraw.Draw(cell)
    font = ImageFont.load_default()
    x = 4
    paths = row["images"]
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            scale = THUMB_HEIGHT / img.height
            thumb = img.convert("RGB").resize((max(1, round(img.width * scale)), THUMB_HEIGHT))
        if row.get("bbox") and i == len(paths) - 1:
            box = [round(v * scale) for v in row["bbox"]]
            ImageDraw.Draw(thumb).rectangle(box, outline=(255, 0, 0), width=2)
        cell.paste(thumb, (x, 4))
        x += thumb.width + 4
        if x >= CELL_WIDTH:
            break
    for j, line in enumerate(lines):
        draw.text((4, THUMB_HEIGHT + 10 + j * _LINE_HEIGHT), line, fill="black", font=font)
    draw.rectangle((0, 0, CELL_WIDTH - 1, height - 1), outline=(200, 200, 200))
    return cell
