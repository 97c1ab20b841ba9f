"""Browser sessions: records in the key-value store, found by the cookie's random id.

A session is ``{user_id, csrf_token, created_at, seen_at}`` under a SHA-256 of its id, with
the store's own time to live. Every worker sharing the store (SQLite file, Redis) accepts it,
and deleting the record (logout) ends it everywhere at once. Expiry slides: a session used
again is given its full lifetime anew, at most once per ``refresh_seconds`` (so a busy page
does not rewrite its record on every request).

Logout leaves a marker before it deletes the record, and a renewal that raced with it (read
before the delete, written after) looks for that marker after writing and takes its write
back: a closed session stays closed.

``revoke_user`` signs a person out everywhere without knowing their session ids: it records
the time, and every session of theirs opened at or before it is refused (and deleted) when it
is next seen. The record lives as long as a session can go unused, which is long enough: a
session idle for longer has expired by itself.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec

from snapreport.identity.records import digest, new_secret
from snapreport.kv.base import KeyValueStore

COOKIE_NAME: Final = "snapreport_session"
CSRF_HEADER: Final = "x-csrf-token"
_PREFIX: Final = "identity:session:"
_REVOKED: Final = "identity:revoked:"
# cookie ids are 43 URL-safe characters; anything much longer is not one of ours
MAX_ID_CHARS: Final = 128


class _Record(msgspec.Struct, frozen=True):
    user_id: str
    csrf_token: str
    created_at: float
    seen_at: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Record).decode


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A live session. ``renewed``: its lifetime was just extended (send the cookie again)."""

    id: str
    user_id: str
    csrf_token: str
    created_at: float
    renewed: bool = False

    def csrf_matches(self, presented: str | None) -> bool:
        """True if ``presented`` is this session's CSRF token (compared in constant time)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token.encode())


class BrowserSessions:
    """Opens, finds (sliding) and closes browser sessions. Errors: ``StoreUnavailable``."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        ttl_seconds: float,
        clock: Callable[[], float],
        refresh_seconds: float | None = None,
    ) -> None:
        self._kv = kv
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._refresh = ttl_seconds / 24 if refresh_seconds is None else refresh_seconds

    async def open(self, user_id: str) -> BrowserSession:
        """A new session for ``user_id`` (after a sign-in)."""
        session_id = new_secret()
        now = self._clock()
        record = _Record(user_id, secrets.token_urlsafe(24), now, now)
        await self._kv.set(self._key(session_id), _encode(record), ttl_seconds=self.ttl_seconds)
        return BrowserSession(session_id, user_id, record.csrf_token, now, renewed=True)

    async def find(self, session_id: str) -> BrowserSession | None:
        """The live session with this id, its lifetime extended; None if there is none."""
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return None
        key = self._key(session_id)
        raw = await self._kv.get(key)
        if raw is None:
            return None
        try:
            record = _decode(raw)
        except msgspec.DecodeError:
            return None
        revoked = await self._kv.get(f"{_REVOKED}{record.user_id}")
        if revoked is not None and record.created_at <= float(revoked):
            await self._kv.delete(key)
            return None
        now = self._clock()
        renewed = now - record.seen_at >= self._refresh
        if renewed:
            fresh = msgspec.structs.replace(record, seen_at=now)
            await self._kv.set(key, _encode(fresh), ttl_seconds=self.ttl_seconds)
            if await self._kv.get(f"{key}:closed") is not None:
                await self._kv.delete(key)
                return None
        return BrowserSession(
            session_id, record.user_id, record.csrf_token, record.created_at, renewed=renewed
        )

    async def close(self, session_id: str) -> None:
        """End the session everywhere (nothing happens if it is already gone)."""
        if session_id and len(session_id) <= MAX_ID_CHARS:
            key = self._key(session_id)
            await self._kv.set(f"{key}:closed", b"1", ttl_seconds=self.ttl_seconds)
            await self._kv.delete(key)

    async def revoke_user(self, user_id: str) -> None:
        """End every session ``user_id`` has now, on every worker."""
        now = f"{self._clock()!r}".encode()
        await self._kv.set(f"{_REVOKED}{user_id}", now, ttl_seconds=self.ttl_seconds)

    @staticmethod
    def _key(session_id: str) -> str:
        return f"{_PREFIX}{digest(session_id)}"
