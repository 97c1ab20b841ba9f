"""``strip_metadata``: copies without EXIF, XMP or comments, the pixels and orientation kept."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image

from snapreport.errors import InvalidImage
from snapreport.media.metadata import gps_position, strip_metadata
from tests.harness.metadata_photos import (
    ORIENTATION,
    gps_jpeg,
    has_metadata,
    photo_with_metadata,
    picture,
)

MIMES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


def orientation(data: bytes) -> int | None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        value = image.getexif().get(ExifTags.Base.Orientation)
    return value if isinstance(value, int) else None


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("WEBP", {})],
    ids=["jpeg", "progressive-jpeg", "png", "webp"],
)
def test_metadata_goes_and_the_picture_stays(fmt: str, options: dict[str, object]) -> None:
    original = photo_with_metadata(fmt, **options)
    assert has_metadata(original)
    copy = strip_metadata(original, MIMES[fmt])
    assert not has_metadata(copy)
    assert pixels(copy) == pixels(original)
    assert orientation(copy) == ORIENTATION
    assert len(copy) < len(original)


def test_pictures_appended_after_the_jpeg_go_too() -> None:
    # phones append further pictures (depth maps, previews) with EXIF of their own
    original = gps_jpeg() + photo_with_metadata("JPEG")
    copy = strip_metadata(original, "image/jpeg")
    assert copy.endswith(b"\xff\xd9")
    assert copy.count(b"\xff\xd8") == 1
    assert not has_metadata(copy)
    assert pixels(copy) == pixels(original)


def test_a_photo_without_metadata_keeps_its_bytes() -> None:
    buffer = io.BytesIO()
    picture().save(buffer, "JPEG")
    plain = buffer.getvalue()
    assert strip_metadata(plain, "image/jpeg") == plain


def test_an_icc_profile_is_kept() -> None:
    profile = b"\x00" * 128  # carried as is; the decoder reads it as opaque bytes
    buffer = io.BytesIO()
    picture().save(buffer, "JPEG", icc_profile=profile, exif=Image.Exif())
    copy = strip_metadata(buffer.getvalue(), "image/jpeg")
    with Image.open(io.BytesIO(copy)) as image:
        assert image.info.get("icc_profile") == profile


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (gps_jpeg()[:40], "image/jpeg"),
        (b"\xff\xd8\xff\xe1\xff\xff" + b"\x00" * 10, "image/jpeg"),
        (photo_with_metadata("PNG")[:60], "image/png"),
        (photo_with_metadata("WEBP")[:40], "image/webp"),
        (b"GIF89a", "image/gif"),
    ],
    ids=["jpeg-cut", "jpeg-long-segment", "png-cut", "webp-cut", "gif"],
)
def test_a_broken_file_is_refused_rather_than_served(data: bytes, mime: str) -> None:
    with pytest.raises(InvalidImage, match="cannot remove the metadata"):
        strip_metadata(data, mime)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_gps_position_is_read_in_every_format(fmt: str) -> None:
    # 31°13'30"N 121°28'12"E, as the test photos carry it
    assert gps_position(photo_with_metadata(fmt)) == (31.225, 121.47)


def _with_gps(**fields: object) -> bytes:
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    for name, value in fields.items():
        gps[getattr(ExifTags.GPS, name)] = value
    buffer = io.BytesIO()
    picture().save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_south_and_west_are_negative() -> None:
    data = _with_gps(
        GPSLatitudeRef="S",
        GPSLatitude=(33.0, 52.0, 4.8),
        GPSLongitudeRef="W",
        GPSLongitude=(70.0, 40.0, 12.0),
    )
    assert gps_position(data) == (-33.868, -70.67)


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no GPS block
        {"GPSLatitudeRef": "N", "GPSLatitude": (31.0, 13.0, 30.0)},  # no longitude
        {"GPSLatitude": (0.0, 0.0, 0.0), "GPSLongitude": (0.0, 0.0, 0.0)},  # no fix
        {"GPSLatitude": (95.0, 0.0, 0.0), "GPSLongitude": (10.0, 0.0, 0.0)},  # out of range
        {"GPSLatitude": (31.0, 13.0), "GPSLongitude": (121.0, 28.0, 12.0)},  # malformed
    ],
    ids=["none", "half", "null-island", "out-of-range", "malformed"],
)
def test_a_photo_without_a_usable_position_has_none(fields: dict[str, object]) -> None:
    assert gps_position(_with_gps(**fields)) is None


def test_bytes_that_are_no_image_have_no_position() -> None:
    assert gps_position(b"not an image") is None
    assert gps_position(gps_jpeg()[:40]) is None
