"""Open311 API keys (``SNAPREPORT_OPEN311__API_KEYS``), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from snapreport.errors import InvalidApiKey


def _digest(key: str) -> bytes:
    # equal-length digests: the comparison's time says nothing about a key's length either
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The keys that may file requests; none configured refuses every request."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys)

    def check(self, presented: str | None) -> str:
        """``presented``, if it is one of the keys; else ``InvalidApiKey``."""
        if not self._digests:
            raise InvalidApiKey(
                "this endpoint takes no requests: no API keys are configured "
                "(SNAPREPORT_OPEN311__API_KEYS)"
            )
        if not presented:
            raise InvalidApiKey("api_key is missing -- can't proceed with create_request")
        given = _digest(presented)
        # compare with every key, so the time taken does not say which one came close
        matches = [hmac.compare_digest(given, digest) for digest in self._digests]
        if not any(matches):
            raise InvalidApiKey("invalid api_key received -- can't proceed with create_request")
        return presented
