"""Shared Qwen2.5-VL test material: the tiny random-weight checkpoint, built once per session.

The fixtures are a pytest plugin (registered in tests/conftest.py): test modules use them by name.
Importing one into a module would define a second fixture of that name, built once more.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
from PIL import Image
from transformers import AutoProcessor

from model.images import NormalizedImage, encode_rgb
from model.prompt import Demo
from model.tiny.qwen import build_tiny_qwen25vl
from model.vlm.messages import set_pixel_budget

# The variable above only counts if it was set before huggingface_hub was first imported.
huggingface_hub.constants.HF_HUB_OFFLINE = True


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2.5-VL checkpoint directory (random weights, real vocabulary)."""
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen25vl"))


@pytest.fixture(scope="session")
def tiny_qwen_processor(tiny_qwen_dir: Path) -> Any:
    """The checkpoint's processor as shipped (its pixel budget untouched)."""
    return AutoProcessor.from_pretrained(tiny_qwen_dir)  # type: ignore[no-untyped-call]


def solid_image(width: int, height: int, rgb: tuple[int, int, int]) -> NormalizedImage:
    """A one-colour normalised JPEG of the given size."""
    return encode_rgb(Image.new("RGB", (width, height), rgb))


def demos(count: int) -> list[Demo]:
    """``count`` demonstrations with 56x56 images (4 visual tokens each)."""
    people = [
        ("bo", "a corgi\nwith short legs"),
        ("<butin>", "my  grey\ttabby cat"),
        ("thao", "my friend, wears glasses"),
        ("plushie", ""),
    ]
    return [
        Demo(name=name, info=info, image=solid_image(56, 56, (60 * i, 200 - 40 * i, 90)))
        for i, (name, info) in enumerate(people[:count])
    ]


def with_pixel_budget(processor: Any, max_pixels: int) -> Any:
    """A copy of ``processor`` whose images are capped at ``max_pixels`` (tokenizer shared)."""
    budgeted = copy.copy(processor)
    budgeted.image_processor = copy.deepcopy(processor.image_processor)
    set_pixel_budget(budgeted, max_pixels)
    return budgeted
