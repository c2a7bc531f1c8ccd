"""The one-decode floor of a caption's photo work: what any service must do with the query at
least, measured in the benchmark's own process.

The floor (the issue's definition, the primary one): one decode (JPEG draft mode to no less than
the size the consumers need, EXIF transpose), one resize to the working size, one JPEG encode of
the image sent to the VLM, and the crops cut from the small image. The floor with CLIP adds what
the service does for CLIP besides: the working image reduced to what the crops need, and the
crops' CLIP preprocessing and forward (one thread): work the service cannot skip either, but not
photo handling. Both leave out everything a request adds around that
work: HTTP and multipart parsing, authentication, SQL, the index search, the prompt, thread
hand-offs, logs and metrics.

:func:`floor_steps` also gives each step alone, for the breakdown of the service's CPU time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from model.embedder import ClipEmbedder, preprocess_batch
from model.images import decode_upright, resample
from model.photos import QueryPhoto, working_fraction
from model.regions import crop, propose_regions


@dataclass(frozen=True)
class FloorSteps:
    """Each step of the floor as a function doing it once, in the order the service does them
    (every step's input is made once, up front, so a step times itself alone)."""

    decode: Callable[[], object]
    resize: Callable[[], object]
    encode: Callable[[], object]
    crops: Callable[[], object]
    clip_image: Callable[[], object]
    clip_preprocess: Callable[[], object]
    clip_forward: Callable[[], object]

    @property
    def floor(self) -> Callable[[], None]:
        """The floor without CLIP: decode, resize, encode, crops."""
        return _chain(self.decode, self.resize, self.encode, self.crops)

    @property
    def floor_with_clip(self) -> Callable[[], None]:
        """The floor and the CLIP image, the crops' CLIP preprocessing and forward."""
        return _chain(
            self.decode,
            self.resize,
            self.encode,
            self.crops,
            self.clip_image,
            self.clip_preprocess,
            self.clip_forward,
        )


def _chain(*steps: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for step in steps:
            step()

    return run


def floor_steps(
    data: bytes,
    embedder: ClipEmbedder,
    *,
    max_pixels: int,
    vlm_max_pixels: int,
    grids: tuple[int, ...] = (2,),
    center: bool = True,
) -> FloorSteps:
    """The floor's steps for ``data``, with the service's rules for sizes and crops (the same
    formulas as :func:`model.photos.prepare_query` and the retrieval service)."""
    smallest = max([*grids, 2 if center else 1])
    clip_min_side = embedder.input_size * smallest

    def fraction(w: int, h: int) -> float:
        return working_fraction(w, h, vlm_max_pixels=vlm_max_pixels, clip_min_side=clip_min_side)

    def decode() -> tuple[Image.Image, tuple[int, int]]:
        return decode_upright(data, max_pixels=max_pixels, fraction=fraction)

    decoded, (width, height) = decode()
    scale = fraction(width, height)
    size = (width, height)
    if scale < 1.0:
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))

    def resize() -> Image.Image:
        if decoded.size == size:
            return decoded  # the service does not resize either
        return resample(decoded, size)  # the service's resize

    working = resize()

    # A fresh QueryPhoto each time: its VLM and CLIP images are cached properties.
    def encode() -> int:
        return len(QueryPhoto(working, width, height, vlm_max_pixels).vlm.data)

    def clip_image() -> Image.Image:
        return QueryPhoto(working, width, height, vlm_max_pixels, clip_min_side).clip_pixels

    small = clip_image()
    full = (width, height)
    regions = propose_regions(full, grids=grids, center=center)

    def crops() -> list[Image.Image]:
        return [crop(small, r, full) for r in regions]

    cut = crops()
    embedder.load()
    loaded = embedder.lifecycle.load()

    def clip_preprocess() -> torch.Tensor:
        return preprocess_batch(loaded.preprocess, cut)

    batch = clip_preprocess().to(loaded.device, dtype=loaded.dtype)

    def clip_forward() -> torch.Tensor:
        with torch.inference_mode():
            out: torch.Tensor = loaded.visual(batch)
        return out

    return FloorSteps(decode, resize, encode, crops, clip_image, clip_preprocess, clip_forward)
