"""The orders engine: URL checks, and SQLite tuned so that concurrent writers wait, not fail.

On SQLite, SQLAlchemy (not the driver) emits ``BEGIN``: writes use ``BEGIN IMMEDIATE`` so a
writer takes the write lock up front and waits up to the busy timeout for it, instead of
failing midway when another connection wrote first (``SQLITE_BUSY`` on lock upgrade). The
journal is WAL, so readers never wait for writers.

Switching a database to WAL (once: the mode is stored in the file) needs a moment alone with
it, and SQLite does not wait for that moment by itself: ``enable_wal`` retries briefly, so
processes starting together do not fail.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from snapreport.errors import ConfigurationError, StoreUnavailable

ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
WRITE_OPTION = "snapreport_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_SWITCH_SECONDS = 10.0
# The orders connections' PostgreSQL settings (docs/console.md, *Scale*):
# - every statement planned for its values (``plan_cache_mode``): the driver prepares
#   statements, and after five runs PostgreSQL may keep one generic plan for all values, but
#   the lists' filters are skewed (a busy reporter or a rare one, a range last week or a year
#   back) and a plan that fits one of them can cost another ten times as much; planning takes
#   a fraction of a millisecond;
# - no JIT: a year of orders makes the figures' estimated costs high enough for the server to
#   compile them to machine code, which took 0.3 to 1.1 s per statement, more than running them;
# - no parallel workers: a list page reads at most a few thousand rows (starting workers cost
#   20 ms of a 30 ms page), and a figure's parts already run at once on connections of their
#   own (``SqlOrderRepository._figures``), which workers only fought for the cores.
POSTGRES_SETTINGS = {
    "plan_cache_mode": "force_custom_plan",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
}


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL of the orders database, with its async driver chosen if omitted."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"SNAPREPORT_ORDERS__URL is not a database URL: {exc}") from exc
    backend = (
        "postgresql" if parsed.drivername.startswith("postgres") else parsed.get_backend_name()
    )
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ConfigurationError(
            f"orders need SQLite or PostgreSQL, not {backend!r} "
            "(sqlite+aiosqlite:///path.db or postgresql+asyncpg://user:pass@host/db)"
        )
    given = parsed.drivername.partition("+")[2]
    if given and given != driver:
        raise ConfigurationError(
            f"orders use the {backend}+{driver} driver, not {parsed.drivername!r}"
        )
    return parsed.set(drivername=f"{backend}+{driver}")


def safe_url(url: URL) -> str:
    """``url`` fit for messages and logs: the password masked."""
    return url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") == "true":
        return None
    return Path(database)


def create_orders_engine(url: URL, *, connect_timeout: float) -> AsyncEngine:
    """An engine for ``url`` (from ``parse_url``); on SQLite, creates the file's directory."""
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"orders database {safe_url(url)}: cannot create {path.parent}: {exc}"
                ) from exc
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _tune_sqlite(engine)
        return engine
    try:
        return create_async_engine(
            url,
            pool_pre_ping=True,
            connect_args={"timeout": connect_timeout, "server_settings": POSTGRES_SETTINGS},
        )
    except NoSuchModuleError as exc:  # pragma: no cover - both drivers are dependencies
        raise ConfigurationError(f"no driver for {safe_url(url)}: {exc}") from exc


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (same pool) marked for write transactions: ``BEGIN IMMEDIATE`` on SQLite."""
    return engine.execution_options(**{WRITE_OPTION: True})


async def enable_wal(engine: AsyncEngine) -> str:
    """Put a SQLite database in WAL mode, retrying while another connection holds it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAL_SWITCH_SECONDS
    pause = 0.01
    while True:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            # The driver connection, not SQLAlchemy's: the pragma must run outside a transaction.
            driver = raw.driver_connection
            assert driver is not None
            try:
                cursor = await driver.execute("PRAGMA journal_mode = WAL")
                row = await cursor.fetchone()
                await cursor.close()
                return str(row[0]) if row else ""
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() > deadline:
                    raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
