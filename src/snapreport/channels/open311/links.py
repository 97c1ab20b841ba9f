"""Signed, expiring links to a request's photo (``media_url``).

A link is ``media/<key>?expires=<unix seconds>&signature=<base64url HMAC-SHA256>`` over the
key and the expiry, with ``SNAPREPORT_OPEN311__MEDIA_SECRET``. Anyone holding a link may fetch
that one photo (without its metadata) until it expires; changing the key or the expiry breaks
the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final
from urllib.parse import urlencode

from snapreport.errors import InvalidMediaLink

MAX_SIGNATURE_CHARS: Final = 64
MAX_EXPIRES_DIGITS: Final = 12


class MediaLinks:
    """Signs and checks photo links; ``ttl_seconds`` is how long a link works."""

    __slots__ = ("_secret", "ttl_seconds")

    def __init__(self, secret: bytes, *, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the media link secret must have at least 16 bytes")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def query(self, key: str, now: float) -> str:
        """The query string that makes the photo route serve ``key`` until ``ttl_seconds``
        from ``now``."""
        expires = int(now) + self.ttl_seconds
        return urlencode({"expires": expires, "signature": self._sign(key, expires)})

    def check(self, key: str, expires: str, signature: str, now: float) -> None:
        """Raise ``InvalidMediaLink`` unless the link is ours, unaltered and not expired."""
        if (
            not expires.isdecimal()
            or len(expires) > MAX_EXPIRES_DIGITS
            or len(signature) > MAX_SIGNATURE_CHARS
        ):
            raise InvalidMediaLink("this photo link is not one this service gave out")
        wanted = self._sign(key, int(expires))
        if not hmac.compare_digest(wanted.encode(), signature.encode()):
            raise InvalidMediaLink("this photo link is not one this service gave out")
        if int(expires) <= now:
            raise InvalidMediaLink("this photo link has expired; read the request again")

    def _sign(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
