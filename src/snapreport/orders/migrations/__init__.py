"""Alembic migrations of the orders schema, run programmatically at start.

``upgrade_to_head(connection)`` runs inside the caller's (write) transaction, so the schema
change and its version stamp commit together. Concurrent starts are serialised: on PostgreSQL
by a transaction-scoped advisory lock taken here, on SQLite by the caller's ``BEGIN
IMMEDIATE``; whoever comes second finds the schema at head and does nothing.

Within one process, Alembic's ``op`` and ``context`` are process-wide proxies, so two
migrations (even of different databases) interleaving on one event loop would run each other's
operations: ``migration_lock()`` makes them take turns.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent
VERSION_TABLE = "snapreport_orders_version"
# An arbitrary constant naming "orders schema migration" among advisory locks.
ADVISORY_LOCK_KEY = 0x736E_6170_6F72_6472  # "snaporder"-ish, fits a signed bigint


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def migration_lock() -> asyncio.Lock:
    """The running event loop's lock, held while a migration runs (see module doc)."""
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` built in code (no ini file), bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["version_table"] = VERSION_TABLE
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of snapreport."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no orders migrations are shipped")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema to head inside ``connection``'s open transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
    if current_revision(connection) == head_revision():
        return
    command.upgrade(alembic_config(connection), "head")
