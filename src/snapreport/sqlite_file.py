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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from snapreport.errors import StoreUnavailable

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30.0


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
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                check_same_thread=False,
                isolation_level=None,  # autocommit: each statement is its own transaction
            )
            for pragma in self._pragmas:
                conn.execute(f"PRAGMA {pragma}")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

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
