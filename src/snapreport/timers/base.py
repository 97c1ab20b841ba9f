"""The expiry-timer port: one due time per user, claimed by exactly one worker.

``schedule`` replaces a user's timer, ``cancel`` drops it, and ``claim_due`` removes and returns
the users whose time has come, atomically, so two workers polling at once never both get one.
The WeCom channel uses them for its proactive expiry notice. Adapters, on the session store's
backend:

- ``redis``: a sorted set (score = due time) and a Lua script that reads and removes in one step.
- ``sqlite``: a table, and ``DELETE ... RETURNING`` (SQLite 3.35 or later) in one statement.
- ``memory``: a heap, for a single process.

Redis and SQLite timers survive a restart; memory timers, like memory sessions, do not.
"""

from __future__ import annotations

from typing import Protocol


class ExpiryTimers(Protocol):
    """Per-user due times, shared by every worker of the backend. Errors: ``StoreUnavailable``."""

    async def schedule(self, user_id: str, due: float) -> None:
        """Set ``user_id``'s timer to ``due`` (replacing any earlier one)."""
        ...

    async def cancel(self, user_id: str) -> None: ...

    async def claim_due(self, now: float, limit: int) -> list[str]:
        """Remove and return up to ``limit`` users whose timer is due at ``now``."""
        ...

    async def aclose(self) -> None: ...
