"""Downscaled, upright, metadata-free JPEG copies for the vision model."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from snapreport.errors import DecompressionBomb, InvalidImage
from snapreport.vision.imaging import JPEG_QUALITY, MAX_EDGE, downscale


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def marked(width: int, height: int) -> Image.Image:
    """Blue, with a red block in the stored top-left corner."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, width // 4, height // 4))
    return img


def rgb_at(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    pixel = img.convert("RGB").getpixel((x, y))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def with_orientation(img: Image.Image, orientation: int, **extra: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    for tag, value in extra.items():
        exif[int(tag.removeprefix("tag_"))] = value
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def test_defaults_follow_the_protocol_notes() -> None:
    assert MAX_EDGE == 1600
    assert JPEG_QUALITY == 85


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 3000), (1600, 1200)), ((3000, 4000), (1200, 1600)), ((1601, 10), (1600, 10))],
)
def test_long_edge_is_capped(size: tuple[int, int], expected: tuple[int, int]) -> None:
    out = downscale(encode(marked(*size), "JPEG"))
    img = decoded(out.data)
    assert img.format == "JPEG"
    assert img.size == expected
    assert (out.width, out.height) == expected


def test_small_images_are_not_enlarged() -> None:
    out = downscale(encode(marked(320, 200), "PNG"))
    assert decoded(out.data).size == (320, 200)


def test_custom_edge() -> None:
    out = downscale(encode(marked(1000, 500), "JPEG"), max_edge=100)
    assert (out.width, out.height) == (100, 50)


@pytest.mark.parametrize(
    ("orientation", "size", "red_corner"),
    [
        (1, (400, 200), "top-left"),
        (3, (400, 200), "bottom-right"),  # turned half round
        (6, (200, 400), "top-right"),  # a quarter clockwise
        (8, (200, 400), "bottom-left"),  # a quarter anticlockwise
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], red_corner: str
) -> None:
    out = decoded(downscale(with_orientation(marked(400, 200), orientation)).data)
    assert out.size == size
    w, h = out.size
    corners = {
        "top-left": (5, 5),
        "top-right": (w - 6, 5),
        "bottom-left": (5, h - 6),
        "bottom-right": (w - 6, h - 6),
    }
    for name, (x, y) in corners.items():
        r, _, b = rgb_at(out, x, y)
        if name == red_corner:
            assert r > 200, name
            assert b < 60, name
        else:
            assert b > 200, name
            assert r < 60, name


def test_orientation_applied_on_a_large_photo() -> None:
    out = downscale(with_orientation(marked(4000, 3000), 6))
    assert (out.width, out.height) == (1200, 1600)


def test_metadata_is_stripped() -> None:
    # 0x010F is the camera make; the output carries no EXIF block at all
    source = with_orientation(marked(300, 200), 1, tag_271="SecretCam")
    assert b"SecretCam" in source
    out = downscale(source).data
    assert b"SecretCam" not in out
    assert "exif" not in decoded(out).info


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_becomes_white(mode: str) -> None:
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0)).convert(mode)
    if mode == "P":
        img.info["transparency"] = 0
    out = decoded(downscale(encode(img, "PNG")).data)
    assert out.mode == "RGB"
    assert min(rgb_at(out, 20, 20)) > 240


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16"])
def test_other_modes_become_rgb(mode: str) -> None:
    img = Image.new(mode, (40, 30))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = decoded(downscale(encode(img, fmt)).data)
    assert out.mode == "RGB"
    assert out.size == (40, 30)


def test_webp_input() -> None:
    out = decoded(downscale(encode(marked(2000, 1000), "WEBP")).data)
    assert out.format == "JPEG"
    assert out.size == (1600, 800)


def test_data_url_is_a_base64_jpeg() -> None:
    url = downscale(encode(marked(50, 50), "PNG")).data_url()
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :])[:3] == b"\xff\xd8\xff"


def test_realistic_photo_shrinks_a_lot() -> None:
    noisy = Image.merge("RGB", [Image.effect_noise((4000, 3000), s) for s in (40, 50, 60)])
    source = encode(noisy, "JPEG", quality=90)
    out = downscale(source)
    assert len(out.data) * 5 < len(source)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"\xff\xd8\xff" + b"\x00" * 64, b"GIF89a" + b"\x00" * 64],
    ids=["empty", "text", "fake-jpeg", "gif"],
)
def test_undecodable_input_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        downscale(data)


def test_truncated_jpeg_is_invalid() -> None:
    data = encode(Image.effect_noise((300, 300), 50), "JPEG")
    with pytest.raises(InvalidImage):
        downscale(data[: len(data) // 2])


def test_too_many_pixels_is_a_bomb() -> None:
    with pytest.raises(DecompressionBomb):
        downscale(encode(marked(100, 100), "PNG"), max_source_pixels=9_999)


@pytest.mark.parametrize(("edge", "quality"), [(0, 85), (100, 0), (100, 96)])
def test_bad_parameters(edge: int, quality: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        downscale(b"", max_edge=edge, quality=quality)
