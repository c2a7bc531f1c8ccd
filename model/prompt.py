"""The RePIC prompt: one system message and one interleaved user turn.

The format is the one RePIC was evaluated with (the reference code's caption scripts)::

    system: SYSTEM_PROMPT
    user:   [demo image 1, "1. Name: <bo>, Info: ...",
             demo image 2, "2. Name: <x>, Info: ...", ...,
             query image, "This is the query image. Give a personalized caption of this image."]

Demonstrations keep the order they are given in (retrieval rank, or the caller's order for
named concepts), so a repeated request hits the VLM server's prefix cache. Names are always shown
in angle brackets. An info text without line breaks is shown byte for byte, leading and repeated
spaces included, as RePIC's retriever writes it. One with line breaks becomes one line: each line
is stripped, blank lines dropped, the rest joined by single spaces. (The reference cannot show
such a text at all: it splits its demo block on newlines, so the rest of the text would take the
place of the next demonstration's line.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from model.images import NormalizedImage, encode_rgb, fit_pixel_budget

SYSTEM_PROMPT = (
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images."
)
DEFAULT_INSTRUCTION = "Give a personalized caption of this image."
QUERY_PREFIX = "This is the query image. "
ZERO_SHOT_SUFFIX = " Output the final answer including its name."


class PromptStyle(StrEnum):
    """``repic`` for RePIC/RAP fine-tunes; ``zero_shot`` for a plain Qwen2.5-VL."""

    REPIC = "repic"
    ZERO_SHOT = "zero_shot"


@dataclass(frozen=True)
class Demo:
    """One retrieved concept shown to the model: its best-matching reference image."""

    name: str
    info: str
    image: NormalizedImage


@dataclass(frozen=True)
class ImagePart:
    image: NormalizedImage


@dataclass(frozen=True)
class TextPart:
    text: str


Part = ImagePart | TextPart


@dataclass(frozen=True)
class RepicPrompt:
    """Backend-neutral messages: the system text and the user turn's ordered parts."""

    system: str
    parts: tuple[Part, ...]

    @property
    def images(self) -> list[NormalizedImage]:
        return [p.image for p in self.parts if isinstance(p, ImagePart)]


def bracket_name(name: str) -> str:
    """``bo`` -> ``<bo>``; a name that already carries brackets is not bracketed twice."""
    return f"<{name.strip().removeprefix('<').removesuffix('>')}>"


def flatten_info(info: str) -> str:
    """``info`` unchanged when it has no line break; otherwise its non-blank lines, each
    stripped, joined by single spaces (see the module docstring)."""
    lines = info.splitlines()
    if len(lines) <= 1 and info == (lines[0] if lines else ""):
        return info
    return " ".join(stripped for line in lines if (stripped := line.strip()))


def demo_text(index: int, name: str, info: str) -> str:
    """``1. Name: <bo>, Info: a corgi`` with a 1-based index."""
    return f"{index}. Name: {bracket_name(name)}, Info: {flatten_info(info)}"


def build_repic_messages(
    demos: Sequence[Demo],
    query: NormalizedImage,
    *,
    instruction: str | None = None,
    style: PromptStyle = PromptStyle.REPIC,
    max_pixels: int | None = None,
    demo_max_pixels: int | None = None,
) -> RepicPrompt:
    """Build the RePIC messages for ``query`` with ``demos`` as interleaved demonstrations.

    ``max_pixels`` / ``demo_max_pixels`` downscale the query / demo images to the VLM's pixel
    budget (vLLM neither applies EXIF nor downscales; the images here are already upright).
    """
    parts: list[Part] = []
    for i, demo in enumerate(demos, start=1):
        parts.append(ImagePart(_within_budget(demo.image, demo_max_pixels)))
        parts.append(TextPart(demo_text(i, demo.name, demo.info)))
    text = QUERY_PREFIX + flatten_info(instruction or DEFAULT_INSTRUCTION)
    if style is PromptStyle.ZERO_SHOT:
        text += ZERO_SHOT_SUFFIX
    parts.append(ImagePart(_within_budget(query, max_pixels)))
    parts.append(TextPart(text))
    return RepicPrompt(system=SYSTEM_PROMPT, parts=tuple(parts))


def _within_budget(image: NormalizedImage, max_pixels: int | None) -> NormalizedImage:
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    return encode_rgb(fit_pixel_budget(image.to_pil(), max_pixels))
