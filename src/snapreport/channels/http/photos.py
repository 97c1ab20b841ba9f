"""Serving stored photos: the original to staff, a copy without metadata to everyone else.

Staff are requests with the admin token (``presents_admin_token``); they get the stored bytes,
kept as evidence. Everyone else (the API token, an API-token-only or open service) gets
``strip_metadata``'s copy: no EXIF (GPS, device, times), XMP, IPTC or comments, the same pixels.
The answer varies with ``Authorization``, and says so to caches.
"""

from __future__ import annotations

import asyncio
from typing import Final

from fastapi import Request
from fastapi.responses import Response

from snapreport.channels.http.auth import presents_admin_token
from snapreport.media.base import MediaStore
from snapreport.media.metadata import strip_metadata

_HEADERS: Final = {"Cache-Control": "private, max-age=86400", "Vary": "Authorization"}


async def photo_response(request: Request, media: MediaStore, key: str) -> Response:
    """The photo under ``key``, as the caller may see it."""
    data, mime = await media.get(key)
    if not presents_admin_token(request):
        data = await asyncio.to_thread(strip_metadata, data, mime)
    return Response(data, media_type=mime, headers=_HEADERS)
