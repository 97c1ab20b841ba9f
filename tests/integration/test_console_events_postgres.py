"""The live feed on PostgreSQL LISTEN/NOTIFY (orders on PostgreSQL, sessions not on Redis; the
test across two server processes is in test_console_events_processes.py): with the listening
connection cut the change still commits and, reconnected, the feed carries later changes again;
an event too large for a notification travels shortened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from snapreport.channels.http import create_app
from snapreport.errors import InvalidInput
from snapreport.live.base import LiveEvent
from snapreport.live.postgres import CHANNEL, MAX_PAYLOAD_BYTES, SHORTENED_CHARS, payload_of
from tests.harness.postgres_server import asyncpg_dsn, fresh_database
from tests.integration.console_kit import ADMIN, console_settings
from tests.integration.live_server import live_server
from tests.integration.sse_kit import open_stream
from tests.integration.test_console_events_processes import file

EVENTS = "/api/v1/events"


@pytest.fixture
async def orders_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def server_on(tmp_path: Path, orders_url: str) -> Iterator[str]:
    with live_server(create_app(console_settings(tmp_path, orders_url))) as url:
        yield url


async def _cut_listeners(orders_url: str) -> int:
    """Terminate the feed's connections (the database stays up): what a network cut or a
    database restart does to a listener. Returns how many were cut."""
    connection = await asyncpg.connect(asyncpg_dsn(orders_url))
    try:
        cut = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND (query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_notify%')"
        )
    finally:
        await connection.close()
    return len(cut)


async def test_listener_cut_the_change_stands_and_the_feed_comes_back(
    server_on: str, orders_url: str
) -> None:
    async with (
        httpx.AsyncClient(base_url=server_on, timeout=30) as client,
        open_stream(client, EVENTS, ADMIN) as stream,
    ):
        first = await file(client, "", "A区北门", "消防通道堵塞")
        assert (await stream.next_event())["order"]["number"] == first["number"]
        assert await _cut_listeners(orders_url) == 1
        # the feed reconnects with backoff: changes keep committing; poll until one arrives
        async with asyncio.timeout(30):
            while True:
                after = await file(client, "", "A区北门", "消防通道堵塞")
                shown = await client.get(f"/api/v1/orders/{after['number']}", headers=ADMIN)
                assert shown.status_code == 200
                try:
                    event = await stream.next_event(wait_seconds=1)
                except TimeoutError:
                    continue
                if event["order"]["number"] == after["number"]:
                    break


async def test_a_notification_is_listened_on_the_feed_channel(orders_url: str) -> None:
    """The channel and payload another process's NOTIFY uses reach a plain listener."""
    received: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(asyncpg_dsn(orders_url))
    try:
        await connection.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
        event = LiveEvent("order.created", {"number": "WO-1", "location": "北门" * 3000})
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload_of(event))
        async with asyncio.timeout(5):
            shown = LiveEvent.decode((await received.get()).encode())
    finally:
        await connection.close()
    assert shown.order["number"] == "WO-1"
    assert shown.order["location"] == "北门" * (SHORTENED_CHARS // 2) + "…"


def test_payload_small_events_unchanged_large_shortened_or_refused() -> None:
    small = LiveEvent("order.created", {"number": "WO-1", "location": "北门"})
    assert LiveEvent.decode(payload_of(small).encode()) == small
    large = LiveEvent("order.created", {"number": "WO-1", "description": "漏" * 5000})
    assert len(payload_of(large).encode()) <= MAX_PAYLOAD_BYTES
    many = LiveEvent("order.created", {f"field{i}": "x" * 150 for i in range(100)})
    with pytest.raises(InvalidInput, match="too large"):
        payload_of(many)
