"""Image bytes for tests, made on the spot with Pillow."""

from __future__ import annotations

import functools
import io
import struct

import numpy as np
from PIL import Image


def solid(
    color: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str = "JPEG"
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def pattern(seed: int, size: tuple[int, int] = (96, 72), fmt: str = "JPEG") -> bytes:
    """A distinct, deterministic picture per seed (blocks of colours)."""
    img = Image.new("RGB", size)
    px = img.load()
    assert px is not None
    for y in range(size[1]):
        for x in range(size[0]):
            px[x, y] = (
                (x * 7 + seed * 53) % 256,
                (y * 5 + seed * 97) % 256,
                ((x // 8 + y // 8) * 31 + seed * 11) % 256,
            )
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def exif_rotated_with_gps() -> bytes:
    """A 40x20 landscape stored sideways: EXIF orientation 6 means 'rotate 90° clockwise to
    view'; the upright image is 20 wide and 40 tall with its red half on top. Carries GPS."""
    upright = Image.new("RGB", (20, 40), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 20, 20))
    stored = upright.rotate(90, expand=True)  # counter-clockwise: undone by orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    gps = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(buf, format="JPEG")  # red
    return buf.getvalue()


def png16() -> bytes:
    img = Image.new("I;16", (32, 32))
    img.paste(65535, (0, 0, 16, 32))  # left half white, right half black
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((0, 255, 0), (255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def png_bomb(side: int = 20000) -> bytes:
    """A real side x side PNG of one-bit zeros: tiny on disk, 400 MP when decoded."""
    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    data = pattern(3, (128, 128))
    return data[: len(data) // 2]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR with no image data."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )


@functools.lru_cache(maxsize=8)
def photo(seed: int, size: tuple[int, int], *, orientation: int | None = None) -> bytes:
    """A smooth, distinct picture per seed: coloured gradients with a few bright blocks."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 6)
        channels.append(127 + 120 * np.sin(xx / w * fx + yy / h * fy + phase))
    arr = np.stack(channels, axis=-1).astype(np.uint8)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w * 3 // 4)), int(rng.integers(0, h * 3 // 4))
        arr[y0 : y0 + h // 5, x0 : x0 + w // 5] = rng.integers(0, 256, 3)
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    if orientation is None:
        img.save(buf, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()
