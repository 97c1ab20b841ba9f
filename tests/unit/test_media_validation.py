"""Upload validation and the media key format, without a store."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from snapreport.errors import DecompressionBomb, ImageTooLarge, InvalidMediaKey
from snapreport.media.validation import (
    KEY_PATTERN,
    check_key,
    content_key,
    mime_for_key,
    sniff_format,
    validate_image,
)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def oriented(fmt: str, orientation: int, size: tuple[int, int] = (60, 20)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.new("RGB", size, (10, 200, 30)), fmt, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("fmt", "expected"), [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP"), ("GIF", None)]
)
def test_sniff_format(fmt: str, expected: str | None) -> None:
    assert sniff_format(encode(Image.new("RGB", (4, 4)), fmt)) == expected


def test_key_is_the_sha256_of_the_bytes() -> None:
    data = encode(Image.new("RGB", (4, 4)), "PNG")
    info = validate_image(data)
    assert info.key == f"img/{hashlib.sha256(data).hexdigest()}.png"
    assert info.key == content_key(data, "image/png")
    assert check_key(info.key) == info.key
    assert mime_for_key(info.key) == "image/png"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(("orientation", "size"), [(1, (60, 20)), (3, (60, 20)), (6, (20, 60))])
def test_displayed_size_follows_exif_orientation(
    fmt: str, orientation: int, size: tuple[int, int]
) -> None:
    info = validate_image(oriented(fmt, orientation))
    assert (info.width, info.height) == size


def test_declared_mime_does_not_decide() -> None:
    data = encode(Image.new("RGB", (4, 4)), "WEBP")
    for declared in ("image/jpeg", "text/html", "application/octet-stream", None):
        assert validate_image(data, declared_mime=declared).mime == "image/webp"


def test_length_is_checked_before_anything_else() -> None:
    with pytest.raises(ImageTooLarge):
        validate_image(b"not even an image" * 10, max_bytes=100)


def test_pixel_cap_is_configurable() -> None:
    data = encode(Image.new("L", (100, 100)), "PNG")
    assert validate_image(data, max_pixels=10_000).width == 100
    with pytest.raises(DecompressionBomb, match="10000"):
        validate_image(data, max_pixels=9_999)


@settings(deadline=None)
@given(st.text(max_size=90))
def test_only_the_exact_key_format_passes(key: str) -> None:
    if KEY_PATTERN.fullmatch(key):
        assert check_key(key) == key
    else:
        with pytest.raises(InvalidMediaKey):
            check_key(key)


@settings(deadline=None)
@given(st.binary(min_size=32, max_size=32), st.sampled_from(["jpg", "png", "webp"]))
def test_every_content_key_is_valid_and_stays_in_img(digest: bytes, ext: str) -> None:
    key = f"img/{hashlib.sha256(digest).hexdigest()}.{ext}"
    assert check_key(key) == key
    assert "/" not in key.removeprefix("img/")
    assert ".." not in key


def test_error_message_escapes_control_characters() -> None:
    with pytest.raises(InvalidMediaKey) as caught:
        check_key("img/\x00\n../x")
    assert "\x00" not in caught.value.message
    assert "\n" not in caught.value.message
