"""The orders database URL: driver choice, refusals, and passwords kept out of messages."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from snapreport.config import OrdersSettings
from snapreport.errors import ConfigurationError, StoreUnavailable
from snapreport.orders.database import create_orders_engine, parse_url, safe_url
from snapreport.orders.repository import SqlOrderRepository


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite+aiosqlite:///data/orders.db", "sqlite+aiosqlite"),
        ("sqlite:///data/orders.db", "sqlite+aiosqlite"),
        ("postgresql+asyncpg://u:p@db/orders", "postgresql+asyncpg"),
        ("postgresql://u:p@db/orders", "postgresql+asyncpg"),
        ("postgres://u:p@db/orders", "postgresql+asyncpg"),
    ],
)
def test_the_async_driver_is_chosen_when_omitted(given: str, driver: str) -> None:
    assert parse_url(given).drivername == driver


@pytest.mark.parametrize(
    "given",
    ["mysql+aiomysql://u:p@db/orders", "postgresql+psycopg2://u:p@db/orders", "not a url"],
)
def test_unusable_urls_are_configuration_errors(given: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(given)


def test_safe_url_masks_the_password() -> None:
    shown = safe_url(parse_url("postgresql://snap:hunter2@db.internal:5432/orders"))
    assert "hunter2" not in shown
    assert "snap:***@db.internal:5432/orders" in shown


def test_sqlite_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "orders.db"
    engine = create_orders_engine(parse_url(f"sqlite:///{path}"), connect_timeout=1)
    engine.sync_engine.dispose()
    assert path.parent.is_dir()


def test_an_uncreatable_sqlite_directory_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        create_orders_engine(parse_url(f"sqlite:///{blocker}/orders.db"), connect_timeout=1)


async def test_the_default_url_makes_a_data_directory_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    repo = await SqlOrderRepository.connect(OrdersSettings().url)
    try:
        await repo.ping()
    finally:
        await repo.aclose()
    database = tmp_path / "data" / "orders.db"
    assert database.is_file()
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
