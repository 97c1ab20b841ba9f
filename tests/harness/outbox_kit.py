"""Outbox test helpers: an orders database of either backend, and synthetic order messages
shaped like the ones dispatch writes (so outbox tests do not depend on dispatch)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from snapreport.outbox.base import OutboxMessage
from tests.harness.postgres_server import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
async def orders_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty orders database of the requested backend (parametrise indirectly)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    async with fresh_database(admin_url) as url:
        yield url


def order_message(
    number: str,
    *,
    topic: str = "order.created",
    recipients: Sequence[str] = ("lisi", "wangwu"),
    text: str | None = None,
) -> OutboxMessage:
    """An order change message as dispatch writes it (API.md Part 2, SEAMS.md)."""
    order: dict[str, Any] = {"number": number, "status": "open", "alarm_type": "漏水"}
    return OutboxMessage(
        topic=topic,
        payload={
            "type": topic,
            "order_number": number,
            "order": order,
            "actor": "alice",
            "recipients": list(recipients),
            "text": text or f"{topic} {number}",
            "link": f"/console/orders/{number}",
        },
    )
