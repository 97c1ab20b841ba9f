"""Photos that carry metadata, as phones write it, made with Pillow: EXIF with GPS, device and
an orientation, XMP and a comment, in each accepted format; and a check for any of it."""

from __future__ import annotations

import io
from typing import Final

from PIL import ExifTags, Image, PngImagePlugin

MAKER: Final = "SnapPhone Maker"
COMMENT: Final = b"taken at gate 3 by zhangsan"
XMP: Final = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">exif:GPSLatitude 31,13.5N</x:xmpmeta>'
ORIENTATION: Final = 6  # turned a quarter: the copy must keep it


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = ORIENTATION
    exif[ExifTags.Base.Make] = MAKER
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (31.0, 13.0, 30.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (121.0, 28.0, 12.0)
    return exif


def picture(width: int = 96, height: int = 64) -> Image.Image:
    image = Image.new("RGB", (width, height), (214, 208, 196))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            image.putpixel((x, y), (x * 2 % 256, y * 3 % 256, 90))
    return image


def photo_with_metadata(fmt: str = "JPEG", **options: object) -> bytes:
    """A small picture in ``fmt`` (JPEG, PNG or WEBP) with GPS EXIF, XMP and a comment."""
    buffer = io.BytesIO()
    image = picture()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", COMMENT.decode())
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        image.save(buffer, "PNG", exif=_exif(), pnginfo=info)
    elif fmt == "WEBP":
        image.save(buffer, "WEBP", exif=_exif(), xmp=XMP, lossless=True)
    else:
        image.save(buffer, "JPEG", exif=_exif(), comment=COMMENT, xmp=XMP, **options)
    return buffer.getvalue()


def gps_jpeg() -> bytes:
    return photo_with_metadata("JPEG", quality=90)


def has_metadata(data: bytes) -> bool:
    """True if ``data`` holds any of what ``photo_with_metadata`` wrote but the orientation."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        exif = image.getexif()
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        others = set(exif) - {ExifTags.Base.Orientation}
    marks = (MAKER.encode(), COMMENT, b"xmpmeta", b"GPSLatitude")
    return bool(gps or others) or any(mark in data for mark in marks)
