"""Expiry timers in a table of the SQLite session database, shared by local workers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from snapreport.sqlite_file import SqliteFile

T = TypeVar("T")

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
