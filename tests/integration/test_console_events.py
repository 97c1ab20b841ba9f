"""``GET /api/v1/events`` in one process (the memory feed) under uvicorn: every change the
caller may see arrives as ``event: order`` with the API's order JSON, comments included;
others' changes do not; heartbeats, the ``retry`` field, the stream limit (503 with a reason)
and sign-in by cookie."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapreport.channels.http import create_app
from tests.integration.console_kit import ADMIN, as_user, console_settings
from tests.integration.http_kit import API_TOKEN, b64, bearer, png_bytes
from tests.integration.live_server import live_server
from tests.integration.sse_kit import open_stream

EVENTS = "/api/v1/events"


def serve(tmp_path: Path, **live: Any) -> Iterator[str]:
    settings = console_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}", live=live
    )
    with live_server(create_app(settings)) as url:
        yield url


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path, heartbeat_seconds=0.2, retry_ms=1500)


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def file(client: httpx.AsyncClient, location: str, alarm_type: str) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/orders",
        json={"alarm_type": alarm_type, "location": location, "description": "堵了"},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_changes_reach_the_streams_that_may_see_them(client: httpx.AsyncClient) -> None:
    async with (
        open_stream(client, EVENTS, as_user("lisi")) as lisi,
        open_stream(client, EVENTS, as_user("pm1")) as pm1,
        open_stream(client, EVENTS, ADMIN) as admin,
    ):
        fire = await file(client, "A区北门", "消防通道堵塞")
        number = fire["number"]
        created = await lisi.next_event()
        assert created["type"] == "order.created"
        assert created["order"] == fire  # the API's own JSON of the order
        accepted = await client.post(f"/api/v1/orders/{number}/accept", headers=as_user("lisi"))
        assert accepted.status_code == 200
        event = await lisi.next_event()
        assert (event["type"], event["order"]) == ("order.accepted", accepted.json())
        commented = await client.post(
            f"/api/v1/orders/{number}/comments", json={"text": "马上到"}, headers=as_user("lisi")
        )
        assert commented.status_code == 201
        event = await lisi.next_event()
        assert event["type"] == "order.commented"
        assert event["order"]["number"] == number
        # pm1 (property) sees none of the fire order: the first event they get is theirs
        garage = await file(client, "B区车库", "垃圾堆放")
        assert (await pm1.next_event())["order"]["number"] == garage["number"]
        assert [(await admin.next_event())["type"] for _ in range(4)] == [
            "order.created",
            "order.accepted",
            "order.commented",
            "order.created",
        ]
        # and lisi never sees the garage: a later fire change is next in line
        rejected = await client.post(
            f"/api/v1/orders/{number}/reject", json={"reason": "重复"}, headers=as_user("zhaoliu")
        )
        assert rejected.status_code == 200
        event = await lisi.next_event()
        assert (event["type"], event["order"]["status"]) == ("order.rejected", "rejected")


async def test_a_merged_report_reaches_the_streams(client: httpx.AsyncClient) -> None:
    """A duplicate report added to an order (``追加``) changes it: ``order.merged_report``."""
    fire = await file(client, "A区北门", "消防通道堵塞")
    api = bearer(API_TOKEN)
    photo = {"data": b64(png_bytes()), "mime": "image/png"}
    async with open_stream(client, EVENTS, as_user("lisi")) as lisi:
        steps: list[dict[str, Any]] = [
            {"image": photo},
            {"text": "消防通道堵塞"},  # manual mode asks the type
            {"text": "A区北门"},
            {"text": "确认"},
        ]
        for step, body in enumerate(steps):
            sent = {"user_id": "wangwu", "message_id": f"m{step}", **body}
            answer = await client.post("/api/v1/messages", json=sent, headers=api)
            assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "waiting_confirm"  # the duplicate is offered
        added = await client.post(
            "/api/v1/messages",
            json={"user_id": "wangwu", "message_id": "m-add", "text": "追加"},
            headers=api,
        )
        assert added.json()["order"]["number"] == fire["number"]
        event = await lisi.next_event()
    assert event["type"] == "order.merged_report"
    assert event["order"]["number"] == fire["number"]
    assert event["order"]["also_reported_by"] == ["wangwu"]


async def test_heartbeats_and_retry(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", EVENTS, headers=ADMIN) as answer:
        assert answer.headers["cache-control"] == "no-store"
        lines: list[str] = []
        async with asyncio.timeout(10):
            async for line in answer.aiter_lines():
                lines.append(line)
                if line == ": heartbeat":
                    break
    assert lines[0] == "retry: 1500"


async def test_a_browser_session_opens_a_stream(client: httpx.AsyncClient) -> None:
    login = await client.post(
        "/api/v1/messages", json={"user_id": "lisi", "text": "登录"}, headers=bearer(API_TOKEN)
    )
    assert login.status_code == 200, login.text
    texts = " ".join(reply["text"] for reply in login.json()["replies"])
    found = re.search(r"/auth/link/[A-Za-z0-9_-]+", texts)
    assert found is not None, texts
    signin = await client.get(found.group(0), follow_redirects=False)
    assert signin.status_code in (302, 303)
    assert "snapreport_session" in client.cookies
    async with open_stream(client, EVENTS, {}) as stream:
        fire = await file(client, "A区北门", "消防通道堵塞")
        assert (await stream.next_event())["order"]["number"] == fire["number"]


async def test_the_stream_limit_answers_503_with_its_reason(tmp_path: Path) -> None:
    for base in serve(tmp_path, max_streams=1):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            async with open_stream(client, EVENTS, ADMIN):
                full = await client.get(EVENTS, headers=ADMIN)
                assert full.status_code == 503
                error = full.json()["error"]
                assert error["code"] == "too_many_streams"
                assert "MAX_STREAMS" in error["message"]
            # the slot is given back when the stream ends
            async with asyncio.timeout(10):
                while True:
                    async with client.stream("GET", EVENTS, headers=ADMIN) as again:
                        if again.status_code == 200:
                            break
                    await asyncio.sleep(0.05)  # polling with a bound, not ordering


async def test_no_credentials_no_stream(client: httpx.AsyncClient) -> None:
    answer = await client.get(EVENTS)
    assert answer.status_code == 401
