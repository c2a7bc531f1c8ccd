"""What each consumer needs from a photo, made from a single decode.

A query photo is decoded once (JPEG in draft mode) at the smallest size that still serves every
consumer: the VLM's pixel budget and the CLIP crops (each grid tile at least the embedder's input
size). The result is resized once into a working image; the VLM image is the working image itself
(or one more resize of it) encoded once. The CLIP crops are cut from the working image reduced to
exactly what they need (its shorter side ``clip_min_side``): CLIP's own preprocessing then
resizes six small crops instead of six crops of the working image, which cost several times the
CLIP forward. Sizes are computed from the photo's full upright size with the same formulas as a
full-resolution pipeline, so the VLM sees exactly the same dimensions; pixels differ only by the
resampling path (draft-mode DCT scaling, torch's antialiased bicubic filter instead of Pillow's,
see :func:`model.images.resample`, and, for CLIP, one more reduction before the final filter: crop
scores within 0.02 of the full-resolution path's, same ranking, see tests/test_photos.py), and
crop boxes are reported in full-size coordinates.

A reference photo becomes its derivatives at upload: the stored copy (download), the
demonstration image within the VLM budget, and a thumbnail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from PIL import Image

from model.images import (
    NormalizedImage,
    budget_size,
    decode_upright,
    encode_rgb,
    resample,
    side_capped_size,
)


@dataclass(frozen=True)
class QueryPhoto:
    """A decoded query: the working pixels, the full upright size, the VLM budget and the
    shorter side the CLIP crops' source needs (0: the working pixels as they are)."""

    pixels: Image.Image
    width: int
    height: int
    vlm_max_pixels: int
    clip_min_side: int = 0

    @property
    def scale(self) -> float:
        """Working size over full size (1.0 when the photo was small enough already)."""
        return self.pixels.width / self.width

    @cached_property
    def vlm(self) -> NormalizedImage:
        """The image sent to the VLM: full-size dimensions fitted to the budget, encoded once."""
        size = budget_size(self.width, self.height, self.vlm_max_pixels)
        img = self.pixels
        if img.size != size:
            img = resample(img, size)
        return encode_rgb(img)

    @cached_property
    def clip_pixels(self) -> Image.Image:
        """The image CLIP crops are cut from: the working pixels with the shorter side reduced
        to ``clip_min_side`` (never enlarged), so each grid tile still covers the embedder's
        input. Crop boxes scale onto it like onto the working pixels."""
        img = self.pixels
        scale = self.clip_min_side / min(img.size) if self.clip_min_side > 0 else 1.0
        if scale >= 1.0:
            return img
        size = (max(1, math.floor(img.width * scale)), max(1, math.floor(img.height * scale)))
        return resample(img, size)


def working_fraction(width: int, height: int, *, vlm_max_pixels: int, clip_min_side: int) -> float:
    """The linear scale that still serves the VLM budget and crops of ``clip_min_side``."""
    vlm = math.sqrt(vlm_max_pixels / (width * height))
    clip = clip_min_side / min(width, height)
    return min(1.0, max(vlm, clip))


def prepare_query(
    data: bytes, *, max_pixels: int, vlm_max_pixels: int, clip_min_side: int
) -> QueryPhoto:
    """Decode an uploaded query once and resize it once to the working size.

    ``clip_min_side`` is the shorter side the working image needs so that the smallest crop
    still covers the embedder's input (e.g. 336 x 2 for 2 x 2 grid tiles). Raises the errors of
    :func:`model.images.normalize_image`.
    """

    def fraction(w: int, h: int) -> float:
        return working_fraction(w, h, vlm_max_pixels=vlm_max_pixels, clip_min_side=clip_min_side)

    img, (width, height) = decode_upright(data, max_pixels=max_pixels, fraction=fraction)
    scale = fraction(width, height)
    size = (width, height)
    if scale < 1.0:
        # At least the VLM's size in both sides: the scale is at least the VLM's scale.
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    if img.size != size:
        img = resample(img, size)
    return QueryPhoto(img, width, height, vlm_max_pixels, clip_min_side)


@dataclass(frozen=True)
class Derivatives:
    """What is stored for a reference photo besides the copy itself."""

    prompt: NormalizedImage
    thumbnail: NormalizedImage


def make_derivatives(
    stored: NormalizedImage, *, prompt_max_pixels: int, thumbnail_side: int
) -> Derivatives:
    """The demonstration image (within ``prompt_max_pixels``) and the thumbnail of a photo.

    When the stored copy already fits the budget, the demonstration image *is* the stored copy
    (same bytes, same blob). Made from the stored copy's pixels at the size a caption used to make
    the demonstration image on every request; the thumbnail is made from the demonstration image
    (both with :func:`model.images.resample`). The service also embeds the reference photo from the
    demonstration image's pixels (see ``ConceptService``).
    """
    size = budget_size(stored.width, stored.height, prompt_max_pixels)
    fits = size == (stored.width, stored.height)
    prompt = stored if fits else encode_rgb(resample(stored.to_pil(), size))
    thumb_size = side_capped_size(stored.width, stored.height, thumbnail_side)
    source = prompt.to_pil()
    thumbnail = encode_rgb(resample(source, thumb_size))
    return Derivatives(prompt=prompt, thumbnail=thumbnail)
