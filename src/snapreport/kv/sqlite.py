"""``SqliteKeyValueStore``: keys in one SQLite table, shared by every process on one machine.

Bootstrap gives it a file of its own next to the session database. The journal is WAL and
writers wait (busy timeout) rather than fail, so several worker processes can share it. Every
statement runs in a worker thread so the event loop never waits on the disk; one connection per
store, guarded by a lock, because sqlite3 connections must not be used by two threads at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from snapreport.sqlite_file import SqliteFile

T = TypeVar("T")

PURGE_EVERY_WRITES = 64
PURGE_BATCH = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapreport_kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapreport_kv_expiry ON snapreport_kv (expires_at);
"""

_SET = """
INSERT INTO snapreport_kv (key, value, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""

# only replaces a row that has already expired, so a live claim is never overwritten
_SET_IF_ABSENT = _SET + " WHERE snapreport_kv.expires_at <= ?"

_REPLACE_IF = """
UPDATE snapreport_kv SET value = ?, expires_at = ?
WHERE key = ? AND value = ? AND expires_at > ?
"""

_INCR = """
INSERT INTO snapreport_kv (key, value, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN snapreport_kv.expires_at <= ? THEN 1
                 ELSE CAST(snapreport_kv.value AS INTEGER) + 1 END,
    expires_at = CASE WHEN snapreport_kv.expires_at <= ? THEN excluded.expires_at
                      ELSE snapreport_kv.expires_at END
RETURNING value
"""

_PURGE = """
DELETE FROM snapreport_kv WHERE key IN (
    SELECT key FROM snapreport_kv WHERE expires_at <= ? LIMIT ?
)
"""


class SqliteKeyValueStore:
    """A ``KeyValueStore`` on a SQLite file; expiry follows the injected clock."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._file = SqliteFile(
            self.path,
            schema=_SCHEMA,
            label="key-value store",
            pragmas=("journal_mode=WAL", "synchronous=NORMAL"),
        )
        self._writes = 0

    def __repr__(self) -> str:
        return f"SqliteKeyValueStore(path={str(self.path)!r})"

    async def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._file.run(action, fn)

    def _after_write(self, conn: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if self._writes % PURGE_EVERY_WRITES == 0:
            conn.execute(_PURGE, (now, PURGE_BATCH))

    async def get(self, key: str) -> bytes | None:
        now = self._clock()

        def fn(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM snapreport_kv WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            return None if row is None else _as_bytes(row[0])

        return await self._run("get", fn)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        now = self._clock()

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(_SET, (key, value, now + ttl_seconds))
            self._after_write(conn, now)

        await self._run("set", fn)

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        now = self._clock()

        def fn(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(_SET_IF_ABSENT, (key, value, now + ttl_seconds, now))
            self._after_write(conn, now)
            return cursor.rowcount == 1

        return await self._run("set_if_absent", fn)

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        now = self._clock()

        def fn(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(_REPLACE_IF, (value, now + ttl_seconds, key, expected, now))
            self._after_write(conn, now)
            return cursor.rowcount == 1

        return await self._run("replace_if", fn)

    async def delete(self, key: str) -> None:
        await self._run(
            "delete", lambda conn: conn.execute("DELETE FROM snapreport_kv WHERE key = ?", (key,))
        )

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        now = self._clock()

        def fn(conn: sqlite3.Connection) -> int:
            row = conn.execute(_INCR, (key, now + ttl_seconds, now, now)).fetchone()
            self._after_write(conn, now)
            return int(row[0])

        return await self._run("incr", fn)

    async def ping(self) -> None:
        await self._run("ping", lambda conn: conn.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        await self._file.aclose()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()
