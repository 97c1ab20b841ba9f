"""``GET /api/v1/stats`` when PostgreSQL goes away and comes back. A figure's statements run at
once on connections of their own (``SqlOrderRepository._figures``): when the database refuses
them the request answers 503 ``store_unavailable`` (none of its parts is left running), and
once it is back the same request answers the same figures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.harness.clock import FakeClock
from tests.harness.postgres_server import asyncpg_dsn, fresh_database
from tests.integration.console_kit import ADMIN, console_app, file_order
from tests.integration.http_kit import Running

GROUPINGS = ("day", "team", "alarm_type", "location")


@pytest.fixture
async def orders_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
async def app(orders_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async with console_app(tmp_path, orders_url, FakeClock()) as r:
        yield r


async def _refuse(postgres_url: str, orders_url: str, *, refuse: bool) -> None:
    """Let the orders database take connections or not; refusing also cuts the open ones."""
    name = make_url(orders_url).database
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not refuse).lower()}')
        if refuse:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def test_figures_answer_503_while_the_database_is_away_and_the_same_after(
    app: Running, postgres_url: str, orders_url: str
) -> None:
    await file_order(app)
    await file_order(app, "B区车库", "垃圾堆放")
    before = {}
    for group_by in GROUPINGS:
        answer = await app.client.get("/api/v1/stats", params={"group_by": group_by}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        before[group_by] = answer.json()
    assert sum(group["created"] for group in before["day"]["groups"]) == 2

    await _refuse(postgres_url, orders_url, refuse=True)
    try:
        for group_by in GROUPINGS:
            answer = await app.client.get(
                "/api/v1/stats", params={"group_by": group_by}, headers=ADMIN
            )
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
    finally:
        await _refuse(postgres_url, orders_url, refuse=False)

    for group_by in GROUPINGS:
        answer = await app.client.get("/api/v1/stats", params={"group_by": group_by}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json() == before[group_by]
