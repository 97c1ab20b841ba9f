"""Images arriving over HTTP: base64 decoded under a size cap, validated before any turn."""

from __future__ import annotations

import asyncio
import base64
import binascii

from snapreport.errors import ImageTooLarge, InvalidRequest
from snapreport.media.validation import ValidatedImage, validate_image


def decode_base64(text: str, max_bytes: int, *, field: str = "image.data") -> bytes:
    """The bytes of base64 ``text`` (a ``data:`` URL is accepted), at most ``max_bytes``."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    text = "".join(text.split())  # line-wrapped base64 is common
    # the decoded size is known from the length: refuse before decoding anything
    if len(text) > 4 * -(-max_bytes // 3):
        raise ImageTooLarge(f"the image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field}: not valid base64") from None
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {max_bytes}")
    return data


async def check_image(data: bytes, max_bytes: int) -> ValidatedImage:
    """Validate an upload off the event loop (type, size, decompression bomb, damage)."""
    return await asyncio.to_thread(validate_image, data, max_bytes=max_bytes)
