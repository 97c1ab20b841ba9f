"""POST /api/v1/messages: JSON and multipart, whole flows, duplicates, the rate limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.harness.clock import FakeClock
from tests.integration.http_kit import (
    image_message,
    make_settings,
    png_bytes,
    report,
    running,
    text_message,
)

ORDER_FIELDS = {
    "number",
    "status",
    "alarm_type",
    "location",
    "description",
    "reporter",
    "assignee",
    "created_at",
    "closed_at",
    "close_verified",
    "forced",
}


async def test_a_text_message_is_answered(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        response = await r.client.post(
            "/api/v1/messages", json=text_message("alice", "帮助", "m-1")
        )
    assert response.status_code == 200
    body = response.json()
    assert body["message_id"] == "m-1"
    assert body["duplicate"] is False
    assert body["state"] == "idle"
    assert body["order"] is None
    assert body["replies"]
    assert all(r["type"] == "text" and r["text"] for r in body["replies"])


async def test_a_whole_report_creates_one_order(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        answer = await report(r.client, "alice", "A区 3号楼")
        order = answer["order"]
        assert order.keys() >= ORDER_FIELDS
        assert order["status"] == "open"
        assert order["reporter"] == "alice"
        assert order["location"] == "A区 3号楼"
        assert order["closed_at"] is None
        assert order["number"] in " ".join(reply["text"] for reply in answer["replies"])
        orders = await r.ctx.orders.list()
    assert [o.number for o in orders] == [order["number"]]


async def test_multipart_photo_then_location_fields(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        photo = await r.client.post(
            "/api/v1/messages",
            data={"user_id": "bob", "message_id": "p-1", "text": "楼梯间堵了"},
            files={"image": ("photo.png", png_bytes(), "image/png")},
        )
        assert photo.status_code == 200, photo.text
        assert photo.json()["state"] == "waiting_location"
        place = await r.client.post(
            "/api/v1/messages",
            data={"user_id": "bob", "latitude": "31.2", "longitude": "121.4", "label": "A区"},
        )
        assert place.status_code == 200, place.text
        assert place.json()["state"] == "waiting_confirm"
        info = await r.ctx.engine.peek("bob")
    assert info is not None
    assert info.session.slots.location == "A区"
    assert info.session.slots.image_key.startswith("img/")


async def test_a_json_location_event(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        await r.client.post("/api/v1/messages", json=image_message("carol", png_bytes()))
        response = await r.client.post(
            "/api/v1/messages",
            json={"user_id": "carol", "location": {"latitude": 31.25, "longitude": 121.5}},
        )
    assert response.status_code == 200
    assert response.json()["state"] == "waiting_confirm"


async def test_a_repeated_message_id_is_answered_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        first = await r.client.post("/api/v1/messages", json=text_message("dave", "帮助", "same"))
        again = await r.client.post("/api/v1/messages", json=text_message("dave", "帮助", "same"))
        info = await r.ctx.engine.peek("dave")
    assert first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    assert {**again.json(), "duplicate": False} == first.json()
    assert info is not None
    assert len(info.session.history) == 1


async def test_concurrent_duplicates_run_the_turn_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        await report_start(r.client, "erin")
        await r.client.post("/api/v1/messages", json=text_message("erin", "仓库门口"))
        answers = await asyncio.gather(
            *(
                r.client.post("/api/v1/messages", json=text_message("erin", "确认", "confirm-1"))
                for _ in range(8)
            )
        )
        orders = await r.ctx.orders.list(user_id="erin")
        info = await r.ctx.engine.peek("erin")
    bodies = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * 7
    assert len({b["order"]["number"] for b in bodies}) == 1
    assert len(orders) == 1
    assert info is not None
    assert len(info.session.history) == 3


async def report_start(client: httpx.AsyncClient, user_id: str) -> None:
    response = await client.post("/api/v1/messages", json=image_message(user_id, png_bytes()))
    assert response.json()["state"] == "waiting_location"


async def test_message_ids_are_per_user(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        one = await r.client.post("/api/v1/messages", json=text_message("u1", "帮助", "x"))
        two = await r.client.post("/api/v1/messages", json=text_message("u2", "帮助", "x"))
    assert one.json()["duplicate"] is False
    assert two.json()["duplicate"] is False


async def test_the_31st_message_in_a_minute_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    clock.now = (1_700_000_000 // 60) * 60 + 40.0  # 40 s into a minute: 20 s to go
    async with running(make_settings(tmp_path), clock=clock) as r:
        for i in range(30):
            ok = await r.client.post("/api/v1/messages", json=text_message("fred", f"hi {i}"))
            assert ok.status_code == 200, ok.text
        before = await r.ctx.engine.peek("fred")
        refused = await r.client.post("/api/v1/messages", json=text_message("fred", "one more"))
        after = await r.ctx.engine.peek("fred")
        other = await r.client.post("/api/v1/messages", json=text_message("gina", "hi"))
        clock.advance(20)
        later = await r.client.post("/api/v1/messages", json=text_message("fred", "next minute"))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "20"
    assert before is not None
    assert after is not None
    assert after.session.version == before.session.version
    assert other.status_code == 200
    assert later.status_code == 200


async def test_a_duplicate_does_not_count_against_the_limit(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with running(make_settings(tmp_path, rate_limit_per_minute=2), clock=clock) as r:
        first = await r.client.post("/api/v1/messages", json=text_message("hal", "a", "1"))
        for _ in range(3):
            again = await r.client.post("/api/v1/messages", json=text_message("hal", "a", "1"))
            assert again.json()["duplicate"] is True
        second = await r.client.post("/api/v1/messages", json=text_message("hal", "b", "2"))
        third = await r.client.post("/api/v1/messages", json=text_message("hal", "c", "3"))
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_duplicates_and_limits_on_shared_backends(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        session = {"backend": "redis", "url": url, "key_prefix": prefix}
    else:
        session = {"backend": "sqlite", "url": str(tmp_path / "sessions.db")}
    settings = make_settings(tmp_path, session=session, rate_limit_per_minute=4)
    async with running(settings, clock=clock) as r:
        answer = await report(r.client, "ivan")
        again = await r.client.post("/api/v1/messages", json=text_message("ivan", "确认", "c-1"))
        dup = await r.client.post("/api/v1/messages", json=text_message("ivan", "确认", "c-1"))
        limited = await r.client.post("/api/v1/messages", json=text_message("ivan", "帮助"))
        orders = await r.ctx.orders.list(user_id="ivan")
    assert answer["order"]["number"] == orders[0].number
    assert again.status_code == 200
    assert dup.json()["duplicate"] is True
    assert dup.json()["replies"] == again.json()["replies"]
    assert limited.status_code == 429
    assert len(orders) == 1
