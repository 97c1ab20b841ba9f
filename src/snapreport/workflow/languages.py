"""The reply language a user chose (``中文`` / ``English``), remembered beyond the session.

The session keeps its language while its record lives; once the store has dropped an expired
record, the next message starts a new session. This remembers the user's explicit choice (never
a channel's hint) in the key-value store for ``KEEP_SECONDS`` after it was last used, so that a
new session starts in it. It is read once when a session starts and written when a choice is
made (and, when it was last written more than ``KEEP_SECONDS / 24`` ago, again when read, so a
user who keeps coming back keeps it): the turns in between never touch it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.workflow.texts import LANGUAGES

KEEP_SECONDS: Final = 180 * 86_400.0
_NAMESPACE: Final = "language"


class _Record(msgspec.Struct, frozen=True):
    language: str
    seen_at: float  # when it was chosen, or last read and written again


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Record).decode


class ChosenLanguages:
    """Each user's chosen reply language, in the key-value store. Errors: ``StoreUnavailable``."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        clock: Callable[[], float],
        keep_seconds: float = KEEP_SECONDS,
    ) -> None:
        if not keep_seconds > 0:
            raise ValueError("keep_seconds must be positive")
        self._kv = kv
        self._clock = clock
        self.keep_seconds = keep_seconds
        self._refresh = keep_seconds / 24

    async def remember(self, user_id: str, language: str) -> None:
        """``user_id`` chose ``language`` (one of ``LANGUAGES``)."""
        await self._write(user_id, _Record(language, self._clock()))

    async def recall(self, user_id: str) -> str | None:
        """The language ``user_id`` chose, or None (never chose, forgotten, or unreadable)."""
        raw = await self._kv.get(key_of(_NAMESPACE, user_id))
        if raw is None:
            return None
        try:
            record = _decode(raw)
        except msgspec.DecodeError:
            return None
        if record.language not in LANGUAGES:
            return None
        now = self._clock()
        if now - record.seen_at >= self._refresh:
            await self._write(user_id, _Record(record.language, now))
        return record.language

    async def _write(self, user_id: str, record: _Record) -> None:
        key = key_of(_NAMESPACE, user_id)
        await self._kv.set(key, _encode(record), ttl_seconds=self.keep_seconds)
