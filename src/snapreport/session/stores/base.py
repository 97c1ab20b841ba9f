"""The ``SessionStore`` port: what the engine needs from a place that keeps sessions.

A store keeps opaque session blobs. The engine owns their meaning; the store owns locking,
atomicity and expiry. Every method converts its driver's errors into ``StoreUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Lease:
    """A held per-user lock and what was loaded under it.

    ``token`` identifies the holder (fencing: a store refuses a commit whose token no longer
    holds the lock). ``handle`` is the store's own bookkeeping (a renewal task, a connection).
    """

    user_id: str
    token: str
    blob: bytes | None
    handle: object = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of active sessions, ordered by user id; ``next_cursor`` is None on the last."""

    items: list[tuple[str, bytes]]
    next_cursor: str | None


class SessionStore(Protocol):
    """Keeps one blob per user, with a per-user lock, a logical expiry and a retention time."""

    async def acquire(self, user_id: str, *, timeout: float) -> Lease:  # noqa: ASYNC109
        """Take the user's lock (waiting in arrival order, at most ``timeout`` seconds), then
        load the user's blob. Raises ``SessionBusy`` when the wait runs out."""
        ...

    async def commit(
        self, lease: Lease, blob: bytes | None, *, expires_at: float, keep_until: float
    ) -> None:
        """Atomically write ``blob`` (or delete the user's record when None) and release the
        lock. The record counts as active until ``expires_at`` and is kept (so that its expiry
        can still be noticed) until ``keep_until``. Raises ``LockLost`` if the lease no longer
        holds the lock; nothing is written then."""
        ...

    async def release(self, lease: Lease) -> None:
        """Release the lock without writing anything."""
        ...

    async def load(self, user_id: str) -> bytes | None:
        """The user's blob without taking the lock or refreshing anything."""
        ...

    async def count_active(self, now: float) -> int:
        """How many records have ``expires_at > now``."""
        ...

    async def page_active(self, now: float, cursor: str | None, limit: int) -> SessionPage:
        """Active records with user ids after ``cursor``, ordered by user id."""
        ...

    async def purge_expired(self, now: float, limit: int) -> int:
        """Drop up to ``limit`` records whose keep time has passed; return how many."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the store cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...
