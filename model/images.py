"""Safe image intake: detect the format from the bytes, decode under a pixel cap, normalise.

Every image that enters the service is decoded by :func:`decode_upright`: concept references
through :func:`normalize_image`, whose result is an upright RGB JPEG without any metadata (EXIF,
GPS, ICC, XMP are dropped by re-encoding) plus its sha256, which names the stored blob and is the
image's identity for the VLM's multimodal cache; queries through :mod:`model.photos`.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from PIL import Image, ImageOps

#: Formats we accept, keyed by Pillow's format name; detection never trusts names or headers.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
OUTPUT_MIME = "image/jpeg"
_JPEG_QUALITY = 92
_ORIENTATION = 0x0112
#: Large downscales first shrink by an integer factor (box filter) to within this factor of the
#: target, then resample: much less work, visually the same (Pillow's ``reducing_gap``).
REDUCING_GAP = 3.0
#: JPEG stores each side in 16 bits.
JPEG_MAX_SIDE = 65_535
#: Qwen2.5-VL's image processor (``smart_resize``) raises on a longer side over 200 times the
#: shorter one: such an image would fail every caption it is part of, so intake refuses it.
VLM_MAX_ASPECT_RATIO = 200
#: One vision patch. The processor rounds each side to whole 28-pixel units, so a shorter side
#: rounds to none and is made up by upscaling: nothing the model could see.
VLM_MIN_SIDE = 14


class ImageError(Exception):
    """An upload that cannot be accepted; the subclass says why."""


class UnsupportedImageType(ImageError):
    """Not an image format we decode."""


class ImageTooLarge(ImageError):
    """More pixels or a longer side than allowed."""


class InvalidImage(ImageError):
    """Truncated, corrupt or otherwise undecodable."""


class UnusableImageShape(ImageError):
    """Decodable, but the captioning model cannot take it (too thin or too elongated)."""


def header_pixels(data: bytes) -> int:
    """Width x height declared by the image header, without decoding pixels (0 if unreadable)."""
    fmt = sniff_format(data)
    if fmt is None:
        return 0
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            return int(img.width) * int(img.height)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 0


@dataclass(frozen=True)
class NormalizedImage:
    """Re-encoded image bytes with their identity and size.

    ``pixels``, when present, is the decoded image the bytes were encoded from: later steps of the
    same request (embedding, derivatives) use it instead of decoding the bytes again. Treat it as
    read-only.
    """

    data: bytes
    width: int
    height: int
    mime: str = OUTPUT_MIME
    pixels: Image.Image | None = field(default=None, compare=False, repr=False)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_pil(self) -> Image.Image:
        """The RGB pixels: the ones kept from encoding, else decoded from the JPEG bytes."""
        if self.pixels is not None:
            return self.pixels
        with Image.open(io.BytesIO(self.data), formats=["JPEG"]) as img:
            return img.convert("RGB")


def sniff_format(data: bytes) -> str | None:
    """Return the Pillow format name the magic bytes announce, or ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    return None


def normalize_image(
    data: bytes, *, max_pixels: int, max_side: int | None = None, keep_pixels: bool = False
) -> NormalizedImage:
    """Decode untrusted bytes and return an upright, metadata-free RGB JPEG.

    Raises :class:`UnsupportedImageType` (415) for anything that is not JPEG, PNG, WebP, GIF or
    BMP by its magic bytes, :class:`ImageTooLarge` (413) when the declared pixel count exceeds
    ``max_pixels`` (checked from the header, before any pixel is decoded, so decompression bombs
    cost nothing) and :class:`InvalidImage` (422) for empty, truncated or corrupt files.
    ``max_side`` downscales the result so its longer side is at most that many pixels (unless
    that would take the shorter side under :data:`VLM_MIN_SIDE`); a JPEG is then decoded at a
    reduced scale (never below that size) and resized once. :class:`UnusableImageShape` (422)
    refuses images the captioning model cannot take. ``keep_pixels`` keeps the decoded pixels
    on the result for the next steps of the same request (embedding, derivatives); leave it off
    for images that are cached, since pixels take far more memory.
    """

    def fraction(width: int, height: int) -> float:
        return storage_scale(width, height, max_side)

    img, (width, height) = decode_upright(data, max_pixels=max_pixels, fraction=fraction)
    scale = storage_scale(width, height, max_side)
    target = (width, height) if scale >= 1.0 else _scaled((width, height), scale)
    if img.size != target:
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    encoded = encode_rgb(img)
    return encoded if keep_pixels else replace(encoded, pixels=None)


def decode_upright(
    data: bytes, *, max_pixels: int, fraction: Callable[[int, int], float]
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode once, upright and RGB, at no less than ``fraction(w, h)`` of the full size.

    ``fraction`` gets the upright full size and returns the linear scale the caller needs (at
    most 1). JPEGs are decoded in draft mode at the smallest DCT scale (1/2, 1/4, 1/8) that still
    covers it, which skips most of the decoding work for large photos; other formats decode in
    full. Returns the image (at least that big, not yet resized to it) and the upright full size.
    :class:`UnusableImageShape` (422) refuses images the captioning model cannot take (see
    :data:`VLM_MAX_ASPECT_RATIO`). Other errors as for :func:`normalize_image`.
    """
    if not data:
        raise InvalidImage("The uploaded file is empty; send the image's bytes.")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedImageType(
            "The file is not a JPEG, PNG, WebP, GIF or BMP image (judged by its content, not "
            "its name); convert it to one of those formats."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=[fmt])
            _check_pixels(opened.width, opened.height, max_pixels)
            _check_shape(opened.width, opened.height)
            raw_w, raw_h = opened.size
            orientation = opened.getexif().get(_ORIENTATION, 1)
            swapped = orientation in (5, 6, 7, 8)
            width, height = (raw_h, raw_w) if swapped else (raw_w, raw_h)
            scale = min(1.0, max(fraction(width, height), 0.0))
            if fmt == "JPEG" and scale < 1.0:
                opened.draft("RGB", (math.ceil(raw_w * scale), math.ceil(raw_h * scale)))
            opened.seek(0)  # first frame of an animation
            opened.load()
            # Upright photos skip the transpose, which would copy the decoded pixels.
            upright = ImageOps.exif_transpose(opened) if orientation != 1 else opened
            img = _to_rgb(upright or opened)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            f"The image decodes to too many pixels; the limit is {max_pixels:,}."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(
            f"The {fmt} image could not be decoded ({exc}); it may be truncated or corrupt. "
            "Re-export it and upload again."
        ) from exc
    return img, (width, height)


def storage_scale(width: int, height: int, max_side: int | None) -> float:
    """The linear scale (at most 1) that brings the longer side within ``max_side`` and JPEG's
    limit, but never takes the shorter side under :data:`VLM_MIN_SIDE`."""
    limit = min(max_side or JPEG_MAX_SIDE, JPEG_MAX_SIDE)
    if max(width, height) <= limit:
        return 1.0
    return min(1.0, max(limit / max(width, height), VLM_MIN_SIDE / min(width, height)))


def side_capped_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size with the longer side at most ``max_side`` (aspect kept, never upscaled)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def budget_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The size with width x height <= ``max_pixels`` (aspect kept, never upscaled)."""
    pixels = width * height
    if pixels <= max_pixels:
        return width, height
    return _scaled((width, height), math.sqrt(max_pixels / pixels))


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Scale (w, h), deriving the longer side from the rounded shorter one so that rounding
    never makes the aspect ratio more extreme than the original's."""
    w, h = size
    if w >= h:
        new_h = max(1, math.floor(h * scale))
        return max(1, min(math.floor(w * scale), math.floor(new_h * w / h))), new_h
    new_w = max(1, math.floor(w * scale))
    return new_w, max(1, min(math.floor(h * scale), math.floor(new_w * h / w)))


def encode_rgb(img: Image.Image) -> NormalizedImage:
    """Encode an RGB image as a metadata-free JPEG, keeping the pixels for later steps.

    No ``optimize`` pass: it saves a few percent of bytes at the cost of a second pass over them.
    """
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return NormalizedImage(data=buf.getvalue(), width=rgb.width, height=rgb.height, pixels=rgb)


def fit_pixel_budget(img: Image.Image, max_pixels: int) -> Image.Image:
    """Downscale (never upscale) so that width x height <= ``max_pixels``, keeping aspect."""
    size = budget_size(img.width, img.height, max_pixels)
    return img if size == img.size else resample(img, size)


def resample(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` resized to ``size`` with an antialiased bicubic filter: the one resize of the
    service's photo paths (query working image, VLM image, CLIP source, demonstration image,
    thumbnail).

    8-bit RGB and greyscale run through torch's antialiased bicubic interpolation, two to four
    times as fast as Pillow's on one thread (a 3 MP photo to 0.8 MP: 11 ms against 40); its
    pixels differ from Pillow's ``BICUBIC`` (without a reducing gap) by at most 2 levels of 255
    and on average by under 0.01 (tests/test_images.py).
    Other modes use Pillow's ``BICUBIC``. torch is imported here, on first use, so that commands
    which never resize start without it.
    """
    if img.size == size:
        return img
    if img.mode not in ("RGB", "L"):
        return img.resize(size, Image.Resampling.BICUBIC)
    import torch
    from torch.nn.functional import interpolate

    bands = len(img.getbands())
    # Interleaved bytes as an NHWC view (torch's fast uint8 path is channels-last); the
    # result comes back planar, and each plane becomes a band without another transpose.
    hwc = np.frombuffer(img.tobytes(), dtype=np.uint8).reshape(img.height, img.width, bands)
    with warnings.catch_warnings():
        # The buffer is read-only; torch warns about that, but the input is only read.
        warnings.simplefilter("ignore", UserWarning)
        nchw = torch.from_numpy(hwc).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        out = interpolate(
            nchw, size=(size[1], size[0]), mode="bicubic", antialias=True, align_corners=False
        )
    planes = out[0].contiguous().numpy()
    layers = [Image.frombuffer("L", size, plane, "raw", "L", 0, 1) for plane in planes]
    return layers[0].copy() if img.mode == "L" else Image.merge(img.mode, layers)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImage("The image declares no pixels; re-export it and upload again.")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,}. Downscale it before uploading."
        )


def _check_shape(width: int, height: int) -> None:
    short, long = min(width, height), max(width, height)
    if short < VLM_MIN_SIDE:
        raise UnusableImageShape(
            f"The image is {width}x{height}; the captioning model needs both sides to be at least "
            f"{VLM_MIN_SIDE} pixels. Upload a larger photo."
        )
    if long > VLM_MAX_ASPECT_RATIO * short:
        raise UnusableImageShape(
            f"The image is {width}x{height} (aspect ratio {long / short:,.0f}:1); the captioning "
            f"model accepts at most {VLM_MAX_ASPECT_RATIO}:1. Crop it to a less elongated shape."
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB, compositing transparency onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # convert() would copy RGB pixels
