"""Image intake: format by content, pixel caps, orientation, colour modes, metadata removal."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.images import (
    ImageTooLarge,
    InvalidImage,
    UnsupportedImageType,
    fit_pixel_budget,
    normalize_image,
    resample,
    sniff_format,
)
from tests.helpers import images

CAP = 40_000_000


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_supported_formats_become_rgb_jpeg(fmt: str) -> None:
    out = normalize_image(images.solid((10, 200, 30), fmt=fmt), max_pixels=CAP)
    img = decoded(out.data)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 48)
    assert out.mime == "image/jpeg" and len(out.sha256) == 64


def test_format_is_judged_by_content_not_name() -> None:
    assert sniff_format(b"hello, I am a text file named photo.jpg") is None
    with pytest.raises(UnsupportedImageType):
        normalize_image(b"hello, I am a text file named photo.jpg", max_pixels=CAP)


def test_tiff_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    with pytest.raises(UnsupportedImageType):
        normalize_image(buf.getvalue(), max_pixels=CAP)


def test_zero_bytes_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        normalize_image(b"", max_pixels=CAP)


def test_truncated_jpeg_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        normalize_image(images.truncated_jpeg(), max_pixels=CAP)


def test_png_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge, match="limit is 40,000,000"):
        normalize_image(images.png_bomb(), max_pixels=CAP)


def test_pixel_cap_is_configurable() -> None:
    data = images.solid((1, 2, 3), size=(100, 100))
    with pytest.raises(ImageTooLarge):
        normalize_image(data, max_pixels=9_999)
    assert normalize_image(data, max_pixels=10_000).width == 100


def test_exif_orientation_applied_and_all_metadata_removed() -> None:
    raw = images.exif_rotated_with_gps()
    assert decoded(raw).getexif().get(0x0112) == 6  # the input really is tagged
    out = normalize_image(raw, max_pixels=CAP)
    img = decoded(out.data)
    assert img.size == (20, 40)  # upright: portrait
    top, bottom = img.getpixel((10, 5)), img.getpixel((10, 35))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below
    assert len(img.getexif()) == 0
    assert "exif" not in img.info and "icc_profile" not in img.info
    assert b"Exif" not in out.data and b"TestCam" not in out.data


def test_cmyk_jpeg_converted_to_rgb() -> None:
    img = decoded(normalize_image(images.cmyk_jpeg(), max_pixels=CAP).data)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((16, 16))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_keeps_its_contrast() -> None:
    img = decoded(normalize_image(images.png16(), max_pixels=CAP).data)
    left, right = img.getpixel((4, 16)), img.getpixel((28, 16))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert min(left) > 240 and max(right) < 15


def test_animated_gif_keeps_first_frame() -> None:
    img = decoded(normalize_image(images.animated_gif(), max_pixels=CAP).data)
    r, g, b = img.getpixel((8, 8))  # type: ignore[misc]
    assert g > 200 and r < 60 and b < 60
    assert getattr(img, "n_frames", 1) == 1


def test_transparency_is_composited_on_white() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(buf, format="PNG")
    img = decoded(normalize_image(buf.getvalue(), max_pixels=CAP).data)
    assert min(img.getpixel((4, 4))) > 245  # type: ignore[arg-type]


def test_max_side_downscales_and_same_input_same_digest() -> None:
    data = images.pattern(1, size=(300, 150))
    a = normalize_image(data, max_pixels=CAP, max_side=100)
    b = normalize_image(data, max_pixels=CAP, max_side=100)
    assert (a.width, a.height) == (100, 50)
    assert a.sha256 == b.sha256


def test_fit_pixel_budget_never_upscales() -> None:
    img = Image.new("RGB", (1000, 500))
    small = fit_pixel_budget(img, 50_000)
    assert small.width * small.height <= 50_000 and abs(small.width / small.height - 2) < 0.05
    assert fit_pixel_budget(img, 10_000_000) is img


@pytest.mark.parametrize(
    ("mode", "src", "dst"),
    [
        ("RGB", (2000, 1500), (1033, 775)),  # a 3 MP reference to the demonstration size
        ("RGB", (640, 480), (365, 274)),  # a 0.3 MP query to a 128-token budget
        ("RGB", (1033, 775), (256, 192)),  # a demonstration image to the thumbnail
        ("RGB", (300, 200), (450, 300)),  # enlarging (never done by the service) works too
        ("L", (800, 600), (123, 92)),
    ],
)
def test_resample_matches_pillows_bicubic_within_two_levels(
    mode: str, src: tuple[int, int], dst: tuple[int, int]
) -> None:
    img = decoded(images.photo(7, src)).convert(mode)
    ours = resample(img, dst)
    pillow = img.resize(dst, Image.Resampling.BICUBIC)
    assert ours.size == dst and ours.mode == mode
    diff = np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(pillow, dtype=np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.01
    # Not a copy of the input or a blank: the content follows the photo.
    assert np.asarray(ours, dtype=np.float32).std() > 5


def test_resample_keeps_same_size_and_other_modes() -> None:
    img = Image.new("RGB", (40, 30), (1, 2, 3))
    assert resample(img, (40, 30)) is img
    rgba = Image.new("RGBA", (40, 30), (10, 20, 30, 128))
    out = resample(rgba, (20, 15))
    assert out.mode == "RGBA"
    assert out.tobytes() == rgba.resize((20, 15), Image.Resampling.BICUBIC).tobytes()
