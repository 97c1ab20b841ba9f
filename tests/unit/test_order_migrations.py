"""Orders migrations on SQLite: they undo cleanly, and a database from the future is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import Connection, column, inspect, table, update
from sqlalchemy.ext.asyncio import create_async_engine

from snapreport.errors import ConfigurationError
from snapreport.orders.database import parse_url
from snapreport.orders.migrations import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
)
from snapreport.orders.repository import SqlOrderRepository

T = TypeVar("T")


async def _run(url: str, fn: Callable[[Connection], T]) -> T:
    engine = create_async_engine(parse_url(url))
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    repo = await SqlOrderRepository.connect(url)
    await repo.aclose()
    return url


async def test_downgrade_to_base_then_connect_rebuilds_the_schema(migrated_url: str) -> None:
    def downgrade(connection: Connection) -> set[str]:
        command.downgrade(alembic_config(connection), "base")
        return set(inspect(connection).get_table_names())

    assert await _run(migrated_url, downgrade) == {VERSION_TABLE}

    repo = await SqlOrderRepository.connect(migrated_url)
    await repo.aclose()
    assert await _run(migrated_url, current_revision) == head_revision()


async def test_a_database_at_an_unknown_revision_is_refused(migrated_url: str) -> None:
    def from_the_future(connection: Connection) -> None:
        versions = table(VERSION_TABLE, column("version_num"))
        connection.execute(update(versions).values(version_num="9999"))

    await _run(migrated_url, from_the_future)

    with pytest.raises(ConfigurationError, match="9999"):
        await SqlOrderRepository.connect(migrated_url)


async def test_databases_migrating_at_once_in_one_process_each_get_their_schema(
    tmp_path: Path,
) -> None:
    # Alembic's ``op`` and ``context`` are process-wide proxies; migrations of different
    # databases interleaving on one event loop must not run on each other's connections.
    urls = [f"sqlite+aiosqlite:///{tmp_path / f'orders{i}.db'}" for i in range(6)]
    repos = await asyncio.gather(*(SqlOrderRepository.connect(url) for url in urls))
    for repo in repos:
        await repo.aclose()

    for url in urls:
        assert await _run(url, current_revision) == head_revision()
        tables = await _run(url, lambda c: set(inspect(c).get_table_names()))
        assert {"alarms", "work_orders", "order_events", "order_counters"} <= tables
