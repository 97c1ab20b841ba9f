"""Downscaled JPEG copies of photos, the form in which images are sent to a vision model.

Phone photos are 4-12 MB; a model needs far less. The copy is upright (EXIF orientation
applied), its long edge at most ``MAX_EDGE`` pixels, re-encoded as JPEG at ``JPEG_QUALITY``
without metadata (no GPS position or camera serial leaves the service). All of it is CPU-bound:
callers on the event loop run it in a worker thread.

``prepare`` makes the copy from an image already decoded (the HTTP channel's one decode per
upload, ``media.validation.decode``); ``downscale`` decodes bytes itself, a JPEG at the smallest
scale libjpeg offers that still covers ``max_edge`` (``draft``), for photos that come without
a prepared copy.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageOps

from snapreport.errors import DecompressionBomb, InvalidImage
from snapreport.vision.base import PreparedImage

MAX_EDGE: Final = 1600
JPEG_QUALITY: Final = 85
_MAX_SOURCE_PIXELS: Final = 50_000_000
_WHITE: Final = (255, 255, 255)


def downscale(
    data: bytes,
    *,
    max_edge: int = MAX_EDGE,
    quality: int = JPEG_QUALITY,
    max_source_pixels: int = _MAX_SOURCE_PIXELS,
) -> PreparedImage:
    """An upright JPEG copy of ``data`` whose long edge is at most ``max_edge`` pixels.

    Smaller images keep their size (never enlarged). Raises ``InvalidImage`` if ``data`` does
    not decode, ``DecompressionBomb`` if it declares more than ``max_source_pixels``.
    """
    _check_options(max_edge, quality)
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"]) as img:
            width, height = img.size
            if width * height > max_source_pixels:
                raise DecompressionBomb(
                    f"the image has {width}x{height} pixels; the limit is {max_source_pixels}"
                )
            # a JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers max_edge: several
            # times faster than decoding every pixel of a 12 MP photo, and as much less memory
            scale = min(1.0, max_edge / max(width, height))
            img.draft(img.mode, (max(1, int(width * scale)), max(1, int(height * scale))))
            img.load()
            return prepare(img, max_edge=max_edge, quality=quality)
    except (DecompressionBomb, InvalidImage):
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"the image is too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for malformed input
        raise InvalidImage(f"the image cannot be decoded: {str(exc)[:200]}") from exc


def prepare(
    img: Image.Image, *, max_edge: int = MAX_EDGE, quality: int = JPEG_QUALITY
) -> PreparedImage:
    """The model's copy of an image already decoded (``load()`` done): upright, its long edge
    at most ``max_edge``, JPEG at ``quality``, no metadata. ``img`` is reduced in place (no
    second full-size copy is made)."""
    _check_options(max_edge, quality)
    # BOX averages the source pixels under each target pixel: for a shrink it is as sharp as a
    # model needs, at a third of LANCZOS's cost (the JPEG is already reduced by its decode)
    img.thumbnail((max_edge, max_edge), Image.Resampling.BOX, reducing_gap=None)
    ImageOps.exif_transpose(img, in_place=True)  # upright, without copying an upright one
    rgb = _to_rgb(img)
    out = io.BytesIO()
    # no exif= / icc_profile= arguments: the copy carries no metadata; no optimize=True: its
    # second pass costs more CPU than the 4 % of bytes it saves are worth
    rgb.save(out, "JPEG", quality=quality)
    return PreparedImage(out.getvalue(), rgb.width, rgb.height)


def _check_options(max_edge: int, quality: int) -> None:
    if max_edge < 1:
        raise ValueError("max_edge must be at least 1")
    if not 1 <= quality <= 95:
        raise ValueError("quality must be 1..95")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any mode to RGB; transparent areas become white rather than black."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit and float greyscale: scale to 8 bits before the RGB conversion
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    return img.convert("RGB")
