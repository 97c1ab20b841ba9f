"""Upload validation shared by every ``MediaStore``, and the media key format.

An upload is accepted only if it is a JPEG, PNG or WebP that decodes completely:

1. its length is checked first (``ImageTooLarge``), before any decoding;
2. its type is detected from its first bytes; the declared MIME type is only a hint and never
   trusted: when it contradicts the bytes, the bytes win and the stored MIME type is corrected
   (phones and chat apps often declare ``application/octet-stream`` or the wrong image type);
   anything but JPEG, PNG or WebP is ``UnsupportedImageType``;
3. its pixel count is read from the header alone and capped (``DecompressionBomb``), before
   anything of its size is allocated;
4. ``verify()`` runs on one open and ``load()`` on a fresh one, so a fake or truncated file is
   ``InvalidImage``. A JPEG is loaded at a reduced scale (``draft``): libjpeg still reads and
   entropy-decodes every byte of it, so truncation and damage are caught, while the pixels it
   produces (and the memory they take) are 4 to 64 times fewer.

``decoded`` lends the decoded image to its caller, so the model's copy of a photo can be made
from the decode that validated it (one decode per upload; see ``channels.http.images``).
Peak memory of one decode: a PNG or WebP decodes in full, at most 4 bytes per pixel, so
``4 * max_pixels`` (200 MB at the default 50 million); a JPEG decodes at the smallest scale
still covering what the caller needs: a 12 MP photo at half scale for the model's copy
(about 9 MB), at one eighth for validation alone.

Keys are content-addressed, ``img/<sha256 of the bytes>.<jpg|png|webp>``, and every key that
comes from outside is checked against one strict pattern, so no key can name a path elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from snapreport.errors import (
    DecompressionBomb,
    ImageTooLarge,
    InvalidImage,
    InvalidMediaKey,
    UnsupportedImageType,
)
from snapreport.media.base import CheckedImage, StoredImage

DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS: Final = 50_000_000

MIME_BY_FORMAT: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}
EXT_BY_MIME: Final[dict[str, str]] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
}
MIME_BY_EXT: Final[dict[str, str]] = {ext: mime for mime, ext in EXT_BY_MIME.items()}

KEY_PATTERN: Final = re.compile(r"img/[0-9a-f]{64}\.(?:jpg|png|webp)")
_MAX_KEY_CHARS: Final = 80

# EXIF orientations 5..8 turn the picture a quarter, so its displayed width is its height.
_EXIF_ORIENTATION: Final = 0x0112
_QUARTER_TURNS: Final = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class ValidatedImage:
    """What validation learnt of an upload; ``width`` and ``height`` are as displayed."""

    key: str
    mime: str
    size: int
    width: int
    height: int


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name of an accepted type from the first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _describe(data: bytes) -> str:
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF"
    if data.startswith(b"BM"):
        return "a BMP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIF/AVIF"
    if data.startswith(b"%PDF"):
        return "a PDF"
    return "not a recognised image"


def content_key(data: bytes, mime: str) -> str:
    """The content-addressed key of ``data`` stored as ``mime``."""
    return f"img/{hashlib.sha256(data).hexdigest()}.{EXT_BY_MIME[mime]}"


def check_key(key: object) -> str:
    """Return ``key`` if it has the exact media key format, else raise ``InvalidMediaKey``.

    The pattern admits only ``img/``, 64 lowercase hex digits, a dot and a known extension, so
    ``..``, absolute paths, backslashes, NUL and URL tricks can never reach a store.
    """
    if not isinstance(key, str):
        raise InvalidMediaKey(f"a media key must be a string, not {type(key).__name__}")
    if len(key) > _MAX_KEY_CHARS or not KEY_PATTERN.fullmatch(key):
        shown = key[:_MAX_KEY_CHARS].encode("unicode_escape").decode("ascii")
        raise InvalidMediaKey(f"not a media key: {shown!r}; expected img/<sha256>.<jpg|png|webp>")
    return key


def mime_for_key(key: str) -> str:
    """The MIME type a valid key's extension stands for."""
    return MIME_BY_EXT[check_key(key).rsplit(".", 1)[1]]


def validate_image(
    data: bytes,
    *,
    declared_mime: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ValidatedImage:
    """Check that ``data`` is an acceptable image and describe it; CPU-bound, run it in a thread.

    ``declared_mime`` is ignored for the decision (see the module docstring). Raises
    ``ImageTooLarge``, ``UnsupportedImageType``, ``DecompressionBomb`` or ``InvalidImage``.
    """
    del declared_mime  # the bytes decide; documented above
    with decoded(data, max_bytes=max_bytes, max_pixels=max_pixels) as (info, _):
        return info


@contextmanager
def decoded(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cover: int | None = None,
) -> Iterator[tuple[ValidatedImage, Image.Image]]:
    """Validate ``data`` by decoding it once, and lend the decoded image until the block ends.

    ``cover``: a JPEG is decoded at the smallest scale whose long edge still reaches ``cover``
    pixels (or the full size if smaller); None decodes it at the smallest scale libjpeg has,
    for validation alone. PNG and WebP always decode in full. Raises as ``validate_image``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidImage(f"image data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise InvalidImage("the image is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedImageType(
            f"the upload is {_describe(data)}; only JPEG, PNG and WebP images are accepted"
        )
    width, height = _probe(data, fmt, max_pixels)
    with _decode(data, fmt, _draft_box(width, height, cover)) as img:
        orientation = _orientation(img)
        shown = (height, width) if orientation in _QUARTER_TURNS else (width, height)
        mime = MIME_BY_FORMAT[fmt]
        yield ValidatedImage(content_key(data, mime), mime, len(data), *shown), img


def _draft_box(width: int, height: int, cover: int | None) -> tuple[int, int]:
    """The size a JPEG must at least decode to: the original scaled so its long edge is
    ``cover`` (as ``thumbnail`` would), or an eighth of it when nothing but validation needs
    the pixels."""
    if cover is None:
        return max(1, width // 8), max(1, height // 8)
    scale = min(1.0, cover / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _effective_pixel_cap(max_pixels: int) -> int:
    # Staying at or under Pillow's own limit means Image.open never warns for an image we
    # accept, without touching the process-wide warning filters from a worker thread.
    pillow_cap = Image.MAX_IMAGE_PIXELS
    return max_pixels if pillow_cap is None else min(max_pixels, pillow_cap)


def _probe(data: bytes, fmt: str, max_pixels: int) -> tuple[int, int]:
    """Read the size from the header only (no pixel data), cap it, and run ``verify()``."""
    # The plugin classes parse the header without Image.open's own bomb check, so the size is
    # known before anything large is allocated.
    factory: type[Image.Image]
    if fmt == "JPEG":
        factory = JpegImagePlugin.JpegImageFile
    elif fmt == "PNG":
        factory = PngImagePlugin.PngImageFile
    else:
        factory = WebPImagePlugin.WebPImageFile
    try:
        with factory(io.BytesIO(data)) as img:
            width, height = img.size
            cap = _effective_pixel_cap(max_pixels)
            if width * height > cap:
                raise DecompressionBomb(
                    f"the image declares {width}x{height} = {width * height} pixels; "
                    f"the limit is {cap}"
                )
            if width < 1 or height < 1:
                raise InvalidImage(f"the image declares an empty size {width}x{height}")
            img.verify()
    except (DecompressionBomb, InvalidImage):
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"the image is too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for malformed input
        raise InvalidImage(f"the {fmt} image is damaged or fake: {_reason(exc)}") from exc
    return width, height


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block does not make the picture unusable
        return 1
    return value if isinstance(value, int) else 1


@contextmanager
def _decode(data: bytes, fmt: str, box: tuple[int, int]) -> Iterator[Image.Image]:
    """Decode the pixels on a fresh open (truncated data fails here), a JPEG at the smallest
    scale that still covers ``box``. The EXIF orientation is read after ``load``: a PNG may
    carry its EXIF chunk after the pixel data."""
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
        img.draft(img.mode, box)  # only a JPEG has a reduced-scale decode; a no-op otherwise
        img.load()
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"the image is too large to decode safely: {exc}") from exc
    except Exception as exc:
        raise InvalidImage(f"the {fmt} image is damaged or truncated: {_reason(exc)}") from exc
    with img:
        yield img


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def check_image(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> CheckedImage:
    """``validate_image`` as a ``CheckedImage`` a store takes without decoding again."""
    info = validate_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return checked(data, info)


def checked(data: bytes, info: ValidatedImage) -> CheckedImage:
    """``data`` with what its validation (``decoded``) learnt."""
    return CheckedImage(
        bytes(data), StoredImage(info.key, info.mime, info.size, info.width, info.height)
    )


async def accept(data: bytes | CheckedImage, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """What a store keeps: ``data`` as it came checked (its size against ``max_bytes`` only),
    or validated now in a worker thread, so decoding never blocks the event loop."""
    if isinstance(data, CheckedImage):
        if data.image.size > max_bytes:
            raise ImageTooLarge(f"the image has {data.image.size} bytes; the limit is {max_bytes}")
        return data
    return await asyncio.to_thread(check_image, data, max_bytes=max_bytes, max_pixels=max_pixels)
