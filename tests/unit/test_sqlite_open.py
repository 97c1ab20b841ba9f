"""``open_database``: many connections opening one new file at once all succeed (SQLite can
answer "database is locked" at once while another switches the file to WAL), and an error
that is not about locking is raised at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from snapreport.sqlite_file import open_database


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB);")


def test_connections_opening_a_new_file_at_once_all_get_it(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    modes: list[str] = []
    for attempt in range(40):  # the race is rare: without the retry, some attempt loses it
        path = tmp_path / f"race{attempt}.db"
        start = threading.Barrier(8)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                conn = open_database(path, _setup, check_same_thread=False)
            except sqlite3.Error as exc:
                errors.append(exc)
                return
            modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            conn.close()

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert modes == ["wal"] * 320


def test_an_error_that_is_not_about_locking_is_raised_at_once(tmp_path: Path) -> None:
    tries: list[int] = []

    def broken(conn: sqlite3.Connection) -> None:
        tries.append(1)
        conn.execute("CREATE TABLE")

    with pytest.raises(sqlite3.OperationalError, match=r"incomplete input|syntax error"):
        open_database(tmp_path / "x.db", broken, timeout=30)
    assert tries == [1]  # not tried again
