"""Where expiry-notice timers live: one due time per user, claimed by exactly one worker.

``schedule`` replaces a user's timer, ``cancel`` drops it, and ``claim_due`` removes and returns
the users whose time has come, atomically, so two workers polling at once never both get one.

- Redis: a sorted set (score = due time) and a Lua script that reads and removes in one step.
- SQLite: a table, and ``DELETE ... RETURNING`` (SQLite 3.35 or later) in one statement.
- memory: a heap, for a single process.

Redis and SQLite timers survive a restart; memory timers, like memory sessions, do not.
"""

from __future__ import annotations

import contextlib
import heapq
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from snapreport.errors import StoreUnavailable
from snapreport.sqlite_file import SqliteFile

T = TypeVar("T")


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


class MemoryExpiryTimers:
    """Timers in this process (the memory session store is single-process too)."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def schedule(self, user_id: str, due: float) -> None:
        self._due[user_id] = due
        heapq.heappush(self._heap, (due, user_id))

    async def cancel(self, user_id: str) -> None:
        self._due.pop(user_id, None)

    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(claimed) < limit:
            due, user_id = heapq.heappop(self._heap)
            # heap entries of replaced or cancelled timers are skipped here, not searched for
            if self._due.get(user_id) == due:
                del self._due[user_id]
                claimed.append(user_id)
        return claimed

    async def aclose(self) -> None:
        return None


_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
    redis.call('ZREM', KEYS[1], unpack(due))
end
return due
"""


class RedisExpiryTimers:
    """Timers in one Redis sorted set, ``<prefix>:wecom:expiry``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, owns_client: bool = False) -> None:
        self._redis = client
        self._key = f"{prefix}:wecom:expiry"
        self._owns_client = owns_client
        self._claim = client.register_script(_CLAIM_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisExpiryTimers:
        client = aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
        return cls(client, prefix=prefix, owns_client=True)

    async def _call(self, action: str, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"redis expiry timers: {action} failed: {exc or type(exc).__name__}"
            ) from exc

    async def schedule(self, user_id: str, due: float) -> None:
        await self._call("schedule", self._redis.zadd(self._key, {user_id: due}))

    async def cancel(self, user_id: str) -> None:
        await self._call("cancel", self._redis.zrem(self._key, user_id))

    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed = await self._call("claim", self._claim(keys=[self._key], args=[repr(now), limit]))
        return [item.decode() if isinstance(item, bytes) else str(item) for item in claimed]

    async def aclose(self) -> None:
        if self._owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapreport_wecom_expiry (
    user_id TEXT PRIMARY KEY,
    due REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapreport_wecom_expiry_due ON snapreport_wecom_expiry (due);
"""

_SCHEDULE = """
INSERT INTO snapreport_wecom_expiry (user_id, due) VALUES (?, ?)
ON CONFLICT (user_id) DO UPDATE SET due = excluded.due
"""

# one statement is one transaction: a row is returned to exactly one of the competing workers
_CLAIM = """
DELETE FROM snapreport_wecom_expiry WHERE user_id IN (
    SELECT user_id FROM snapreport_wecom_expiry WHERE due <= ? ORDER BY due LIMIT ?
) RETURNING user_id
"""


class SqliteExpiryTimers:
    """Timers in a table of a SQLite file (the session database), shared by local workers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = SqliteFile(self.path, schema=_SCHEMA, label="expiry timers")

    async def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._file.run(action, fn)

    async def schedule(self, user_id: str, due: float) -> None:
        await self._run("schedule", lambda conn: conn.execute(_SCHEDULE, (user_id, due)))

    async def cancel(self, user_id: str) -> None:
        await self._run(
            "cancel",
            lambda conn: conn.execute(
                "DELETE FROM snapreport_wecom_expiry WHERE user_id = ?", (user_id,)
            ),
        )

    async def claim_due(self, now: float, limit: int) -> list[str]:
        def fn(conn: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in conn.execute(_CLAIM, (now, limit)).fetchall()]

        return await self._run("claim", fn)

    async def aclose(self) -> None:
        await self._file.aclose()
