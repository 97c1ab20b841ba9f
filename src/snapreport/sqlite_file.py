"""``SqliteFile``: one SQLite connection, used from worker threads, for small shared tables.

The event loop never waits on the disk: every statement runs in a worker thread, on one
connection per file guarded by a lock (a sqlite3 connection must not be used by two threads at
once). The journal is WAL and writers wait (busy timeout) rather than fail, so several worker
processes can share the file. Driver errors become ``StoreUnavailable`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from snapreport.errors import StoreUnavailable

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30.0
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (their extended codes share the low byte)


def open_database(
    path: str | Path,
    setup: Callable[[sqlite3.Connection], None],
    *,
    timeout: float = BUSY_TIMEOUT_SECONDS,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """An autocommit connection to ``path`` on which ``setup`` (pragmas, schema) has run.

    When several processes open a new file at once, switching it to WAL or creating its tables
    can fail with "database is locked" straight away: SQLite does not wait out its busy
    timeout when waiting could deadlock. The whole opening is then tried again, for up to
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        conn = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread
        )
        try:
            setup(conn)
            return conn
        except BaseException as exc:
            conn.close()  # which rolls back whatever ``setup`` began
            busy = isinstance(exc, sqlite3.OperationalError) and (
                exc.sqlite_errorcode & 0xFF in _BUSY_CODES
            )
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class SqliteFile:
    """A lazily opened SQLite file with ``schema`` applied; ``label`` names it in errors."""

    def __init__(
        self,
        path: str | Path,
        *,
        schema: str,
        label: str,
        pragmas: Sequence[str] = ("journal_mode=WAL",),
    ) -> None:
        self.path = Path(path)
        self._schema = schema
        self._label = label
        self._pragmas = tuple(pragmas)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit: each statement is its own transaction
            self._conn = open_database(self.path, self._setup, check_same_thread=False)
        return self._conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        for pragma in self._pragmas:
            conn.execute(f"PRAGMA {pragma}")
        conn.executescript(self._schema)

    async def run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection in a worker thread."""

        def work() -> T:
            with self._lock:
                return fn(self._connect())

        try:
            return await asyncio.to_thread(work)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{self._label} {self.path}: {action} failed: {exc}") from exc

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)
