"""The ``KeyValueStore`` port."""

from __future__ import annotations

from typing import Protocol


class KeyValueStore(Protocol):
    """Bytes under string keys, each with its own time to live. Errors: ``StoreUnavailable``."""

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None (absent or expired)."""
        ...

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds``, replacing what was there."""
        ...

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        """Store ``value`` only if ``key`` holds nothing live; True if it was stored."""
        ...

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        """Store ``value`` for ``ttl_seconds`` only if ``key`` holds ``expected``, live; True if
        it was stored (one atomic step: a claim is renewed only by its holder)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is absent)."""
        ...

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        """Add one to a counter, creating it with ``ttl_seconds`` if absent; the new value."""
        ...

    async def aclose(self) -> None:
        """Release connections (a store the caller handed in is left open)."""
        ...
