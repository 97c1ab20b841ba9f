"""Copies of stored photos without metadata, made without re-encoding: same pixels, same bytes.

A phone photo says where it was taken (EXIF GPS), with which device and when, in EXIF, XMP,
IPTC and comment blocks. The stored original keeps all of it as evidence; ``strip_metadata``
makes the copy served to everyone but staff. It walks the file's own structure and keeps only
what draws the picture:

- JPEG: the segments before the first scan except APP1 and APP3..APP13, APP15 and comments
  (APP0/JFIF, APP2 only for an ICC profile, and APP14/Adobe are kept); the scans as they are;
  nothing after the end of the image, where phones append further pictures with their own EXIF.
- PNG: the critical chunks and the ancillary ones that change how it looks (transparency,
  gamma, colour space, ICC profile, pixel size, background, animation); every other chunk
  (``eXIf``, ``tEXt``, ``zTXt``, ``iTXt``, ``tIME``, private chunks) is dropped.
- WebP: the image, alpha, animation and ICC chunks; ``EXIF``, ``XMP `` and unknown chunks are
  dropped and the ``VP8X`` flags changed to match.

The one field kept is the EXIF orientation (in a minimal EXIF block of its own), so the copy
shows the same way up. The cost is one pass over the bytes: the scans and image chunks are
copied, never decoded.

``gps_position`` reads the one thing the dialogue uses from a photo's metadata: where it was
taken (EXIF GPS), which is offered to the reporter as the location and used only if they agree.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from typing import Final

from PIL import ExifTags, Image

from snapreport.errors import InvalidImage

_ORIENTATION: Final = 0x0112
_EXIF_HEADER: Final = b"Exif\x00\x00"

# JPEG: markers without a length, and the application segments kept (by marker, with the
# identifier their payload must start with)
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
_SOS: Final = 0xDA
_EOI: Final = 0xD9
_APP0: Final = 0xE0
_APP1: Final = 0xE1
_KEPT_APPS: Final = {0xE0: b"", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
# inside a scan, 0xFF is followed by 0x00 (a stuffed byte), a restart marker or a fill byte;
# anything else is a marker
_SCAN_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT: Final = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
        b"sBIT", b"pHYs", b"bKGD", b"hIST", b"cICP", b"mDCv", b"cLLi", b"acTL", b"fcTL",
        b"fdAT",
    }
)  # fmt: skip

_WEBP_KEPT: Final = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF: Final = 0x08
_VP8X_XMP: Final = 0x04


def strip_metadata(data: bytes, mime: str) -> bytes:
    """``data`` (a stored JPEG, PNG or WebP) without its metadata; see the module docstring.

    Raises ``InvalidImage`` when the file's structure is broken (lengths running past its
    end): nothing is served rather than a copy that might still hold metadata.
    """
    if mime == "image/jpeg":
        return _jpeg(data)
    if mime == "image/png":
        return _png(data)
    if mime == "image/webp":
        return _webp(data)
    raise InvalidImage(f"cannot remove the metadata of {mime}")


def _orientation(exif: bytes) -> int:
    """The orientation in an EXIF block (with or without its ``Exif`` header); 1 if none."""
    try:
        block = Image.Exif()
        block.load(exif)
        value = block.get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block holds no orientation we can trust
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orientation_only(orientation: int) -> bytes:
    """A minimal EXIF block (TIFF, without the ``Exif`` header) holding just the orientation."""
    block = Image.Exif()
    block[_ORIENTATION] = orientation
    return block.tobytes()[len(_EXIF_HEADER) :]


def _broken(kind: str, what: str) -> InvalidImage:
    return InvalidImage(f"cannot remove the metadata of this {kind}: {what}")


# -- JPEG ---------------------------------------------------------------------------------------


def _jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise _broken("JPEG", "it does not start with SOI")
    head: list[bytes] = [b"\xff\xd8"]
    orientation = 1
    pos = 2
    while True:  # the segments before the first scan
        pos = data.find(b"\xff", pos)  # junk between segments is skipped, as decoders do
        if pos < 0 or pos + 1 >= len(data):
            raise _broken("JPEG", "it ends before its first scan")
        marker = data[pos + 1]
        if marker == 0xFF or marker in _STANDALONE:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == _EOI:
            raise _broken("JPEG", "it ends before its first scan")
        end, keep = _segment(data, pos, marker)
        if marker == _APP1 and data.startswith(_EXIF_HEADER, pos + 4):
            orientation = _orientation(data[pos + 4 : end])
        if keep:
            head.append(data[pos:end])
        pos = end
        if marker == _SOS:
            break
    if orientation != 1:
        exif = _EXIF_HEADER + _orientation_only(orientation)
        segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        after_jfif = 2 if len(head) > 1 and head[1][1] == _APP0 else 1
        head.insert(after_jfif, segment)
    body: list[bytes] = []
    while True:  # the scans, and the segments between them (progressive JPEG), up to EOI
        found = _SCAN_MARKER.search(data, pos)
        if found is None:  # no EOI: keep the rest, which is scan data
            body.append(data[pos:])
            break
        body.append(data[pos : found.start()])
        pos = found.start()
        marker = data[pos + 1]
        if marker == _EOI:
            body.append(b"\xff\xd9")
            break
        end, keep = _segment(data, pos, marker)
        if keep:
            body.append(data[pos:end])
        pos = end
    return b"".join(head + body)


def _segment(data: bytes, pos: int, marker: int) -> tuple[int, bool]:
    """The end of the segment at ``pos`` and whether the copy keeps it."""
    if pos + 4 > len(data):
        raise _broken("JPEG", "a segment header is cut off")
    (length,) = struct.unpack_from(">H", data, pos + 2)
    end = pos + 2 + length
    if length < 2 or end > len(data):
        raise _broken("JPEG", f"segment 0xFF{marker:02X} runs past the end")
    if marker == 0xFE or 0xE0 <= marker <= 0xEF:  # comments and application segments
        ident = _KEPT_APPS.get(marker)
        return end, ident is not None and data.startswith(ident, pos + 4)
    return end, True


# -- PNG ----------------------------------------------------------------------------------------


def _png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise _broken("PNG", "it does not start with the PNG signature")
    chunks: list[bytes] = [_PNG_SIGNATURE]
    orientation = 1
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise _broken("PNG", "a chunk header is cut off")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise _broken("PNG", f"chunk {kind!r} runs past the end")
        if kind == b"eXIf":
            orientation = _orientation(data[pos + 8 : pos + 8 + length])
        if kind in _PNG_KEPT:
            chunks.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if orientation != 1:  # right after IHDR: an eXIf chunk must come before the image data
        exif = _orientation_only(orientation)
        crc = zlib.crc32(b"eXIf" + exif)
        chunks.insert(2, struct.pack(">I4s", len(exif), b"eXIf") + exif + struct.pack(">I", crc))
    return b"".join(chunks)


# -- WebP ---------------------------------------------------------------------------------------


def _webp(data: bytes) -> bytes:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _broken("WebP", "it is not a RIFF WEBP file")
    chunks: list[bytearray] = []
    orientation = 1
    pos = 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > len(data):
            raise _broken("WebP", f"chunk {kind!r} runs past the end")
        if kind == b"EXIF":
            orientation = _orientation(data[pos + 8 : pos + 8 + size])
        if kind in _WEBP_KEPT:
            chunks.append(bytearray(data[pos:end]))
        pos = end
    extended = chunks and chunks[0][:4] == b"VP8X"
    if extended:
        flags = chunks[0][8] & ~(_VP8X_EXIF | _VP8X_XMP)
        if orientation != 1:
            flags |= _VP8X_EXIF
            exif = _orientation_only(orientation)
            pad = b"\x00" * (len(exif) & 1)
            chunks.append(bytearray(struct.pack("<4sI", b"EXIF", len(exif)) + exif + pad))
        chunks[0][8] = flags
    body = b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def gps_position(data: bytes) -> tuple[float, float] | None:
    """Where the photo was taken, from its EXIF GPS block: (latitude, longitude) in degrees,
    or None when it has none, or one that is unreadable, out of range, or exactly 0,0 (what
    some cameras write when they had no fix). Reads the header only; no pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        latitude = _gps_degrees(
            gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S"
        )
        longitude = _gps_degrees(
            gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W"
        )
    except (OSError, ValueError, TypeError, ZeroDivisionError, SyntaxError, struct.error):
        return None
    except Image.DecompressionBombError:
        return None
    if latitude is None or longitude is None:
        return None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return None
    if latitude == 0.0 and longitude == 0.0:
        return None
    # seven decimals are a centimetre: what the rationals mean, without binary noise
    return round(latitude, 7), round(longitude, 7)


def _gps_degrees(value: object, ref: object, negative: str) -> float | None:
    """EXIF's (degrees, minutes, seconds) rationals and N/S or E/W as signed degrees."""
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in value)
    total = degrees + minutes / 60.0 + seconds / 3600.0
    if not math.isfinite(total) or min(degrees, minutes, seconds) < 0:
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -total if isinstance(ref, str) and ref.strip().upper() == negative else total
