"""The live feed across processes, on Redis pub/sub and on PostgreSQL LISTEN/NOTIFY: a change
made through one server process reaches a stream held by another within a second, and not a
worker of another team; with Redis away a change still commits (the feed misses it: at most
once) and, Redis back, the feed carries later changes again (the PostgreSQL listener's cut is
in test_console_events_postgres.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapreport.channels.http import create_app
from tests.harness.postgres_server import fresh_database
from tests.harness.redis_server import RedisServer
from tests.integration._server_process import ServerProcess
from tests.integration.console_kit import ADMIN, as_user, console_settings
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import ADMIN_TOKEN, API_TOKEN
from tests.integration.live_server import live_server
from tests.integration.sse_kit import open_stream

EVENTS = "/api/v1/events"


@pytest.fixture
async def orders_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_url) as url:
        yield url


async def file(
    client: httpx.AsyncClient, base: str, location: str, alarm_type: str
) -> dict[str, Any]:
    answer = await client.post(
        f"{base}/api/v1/orders",
        json={"alarm_type": alarm_type, "location": location, "description": "堵了"},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


# the feed between processes: Redis pub/sub when sessions are on Redis; else, orders being on
# PostgreSQL, LISTEN/NOTIFY
FEEDS = ("postgresql", "redis")


def feed_settings(feed: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    if feed == "redis":
        return {
            "SNAPREPORT_SESSION__BACKEND": "redis",
            "SNAPREPORT_SESSION__URL": redis_url,
            "SNAPREPORT_SESSION__KEY_PREFIX": redis_prefix,
        }
    return {"SNAPREPORT_SESSION__BACKEND": "sqlite"}


@pytest.fixture(params=FEEDS)
def two_servers(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    orders_url: str,
) -> Iterator[tuple[str, str]]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    settings = {
        **feed_settings(request.param, redis_url, redis_prefix),
        "SNAPREPORT_ORDERS__URL": orders_url,
        "SNAPREPORT_DISPATCH__RULES_FILE": str(rules),
        "SNAPREPORT_API_TOKEN": API_TOKEN,
        "SNAPREPORT_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            process = ServerProcess(directory, settings, name=name)
            started.append(process)
            process.start()
        yield started[0].url, started[1].url
    finally:
        for process in started:
            process.stop()


@pytest.mark.slow
async def test_a_change_through_a_reaches_a_stream_of_b_within_a_second(
    two_servers: tuple[str, str],
) -> None:
    a, b = two_servers
    async with (
        httpx.AsyncClient(timeout=30) as client,
        open_stream(client, f"{b}{EVENTS}", as_user("lisi")) as lisi,
        open_stream(client, f"{b}{EVENTS}", as_user("pm1")) as pm1,
    ):
        started = time.monotonic()
        fire = await file(client, a, "A区北门", "消防通道堵塞")
        event = await lisi.next_event(wait_seconds=5)
        elapsed = time.monotonic() - started
        assert event["type"] == "order.created"
        assert event["order"] == fire
        assert elapsed < 1.0, f"seen on the other process after {elapsed:.3f} s"
        started = time.monotonic()
        accepted = await client.post(
            f"{a}/api/v1/orders/{fire['number']}/accept", headers=as_user("lisi")
        )
        assert accepted.status_code == 200
        event = await lisi.next_event(wait_seconds=5)
        assert event["type"] == "order.accepted"
        assert time.monotonic() - started < 1.0
        # pm1 (another team) saw neither: their first event is the garage order
        garage = await file(client, a, "B区车库", "垃圾堆放")
        assert (await pm1.next_event())["order"]["number"] == garage["number"]


@pytest.fixture
def server_on(tmp_path: Path, redis_server: RedisServer, orders_url: str) -> Iterator[str]:
    settings = console_settings(
        tmp_path,
        orders_url,
        session={"backend": "redis", "url": redis_server.url, "key_prefix": "live-fault"},
    )
    with live_server(create_app(settings)) as url:
        yield url


async def test_redis_away_the_change_stands_and_the_feed_comes_back(
    server_on: str, redis_server: RedisServer
) -> None:
    async with (
        httpx.AsyncClient(base_url=server_on, timeout=30) as client,
        open_stream(client, EVENTS, ADMIN) as stream,
    ):
        first = await file(client, "", "A区北门", "消防通道堵塞")
        assert (await stream.next_event())["order"]["number"] == first["number"]
        redis_server.stop()
        try:
            # the change commits in the database; only its live event is lost
            during = await file(client, "", "A区北门", "消防通道堵塞")
            shown = await client.get(f"/api/v1/orders/{during['number']}", headers=ADMIN)
            assert shown.status_code == 200
        finally:
            redis_server.start()
        # the listener resubscribes with backoff: poll with changes until one arrives
        async with asyncio.timeout(30):
            while True:
                after = await file(client, "", "A区北门", "消防通道堵塞")
                try:
                    event = await stream.next_event(wait_seconds=1)
                except TimeoutError:
                    continue
                assert event["order"]["number"] != during["number"]
                if event["order"]["number"] == after["number"]:
                    break
