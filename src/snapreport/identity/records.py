"""Single-use records in the key-value store, keyed by a hash of their secret.

Sign-in links and OAuth ``state`` values are bearer secrets. The store holds only a SHA-256 of
each (a copy of the store hands out nothing usable), and a claim marker taken with
``set_if_absent`` makes each one usable once across every worker sharing the store.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal

from snapreport.kv.base import KeyValueStore

TOKEN_BYTES: Final = 32

Redeemed = Literal["ok", "unknown", "used"]


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class OneTimeRecords:
    """Values stored under a secret, each redeemable once before it expires."""

    def __init__(self, kv: KeyValueStore, *, prefix: str, ttl_seconds: float) -> None:
        self._kv = kv
        self._prefix = prefix
        self.ttl_seconds = ttl_seconds

    async def put(self, secret: str, value: bytes) -> None:
        await self._kv.set(self._key(secret), value, ttl_seconds=self.ttl_seconds)

    async def redeem(self, secret: str) -> tuple[Redeemed, bytes | None]:
        """The value under ``secret`` and ``"ok"`` the first time; ``"used"`` after that (while
        the marker lives), ``"unknown"`` for a secret never issued or expired."""
        key = self._key(secret)
        value = await self._kv.get(key)
        claimed = f"{key}:used"
        if value is None:
            used = await self._kv.get(claimed)
            return ("used" if used is not None else "unknown"), None
        # two workers may both read the value; only one takes the marker
        if not await self._kv.set_if_absent(claimed, b"1", ttl_seconds=self.ttl_seconds):
            return "used", None
        await self._kv.delete(key)
        return "ok", value

    def _key(self, secret: str) -> str:
        return f"{self._prefix}{digest(secret)}"
