"""Admin endpoints: sessions (list, show, clear), orders (list, show, create), media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.clock import FakeClock
from tests.integration.http_kit import (
    Running,
    b64,
    image_message,
    jpeg_bytes,
    make_settings,
    png_bytes,
    report,
    running,
    text_message,
)


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(make_settings(tmp_path), clock=clock) as r:
        yield r


async def test_sessions_are_counted_and_paged(app: Running) -> None:
    for user in ("u3", "u1", "u2"):
        await app.client.post("/api/v1/messages", json=text_message(user, "帮助"))
    first = (await app.client.get("/api/v1/sessions", params={"limit": 2})).json()
    assert first["active"] == 3
    assert [s["user_id"] for s in first["sessions"]] == ["u1", "u2"]
    assert first["next_cursor"]
    second = (
        await app.client.get("/api/v1/sessions", params={"cursor": first["next_cursor"]})
    ).json()
    assert [s["user_id"] for s in second["sessions"]] == ["u3"]
    assert second["next_cursor"] is None
    assert second["sessions"][0]["turns"] == 1
    assert second["sessions"][0]["state"] == "idle"


async def test_a_session_shows_state_slots_history_and_expiry(
    app: Running, clock: FakeClock
) -> None:
    await app.client.post("/api/v1/messages", json=image_message("alice", png_bytes(), "p"))
    clock.advance(100)
    body = (await app.client.get("/api/v1/sessions/alice")).json()
    assert body["state"] == "waiting_location"
    assert body["slots"]["image_key"].startswith("img/")
    assert [m["role"] for m in body["history"]] == ["user", "assistant"]
    assert body["history"][0]["images"] == [body["slots"]["image_key"]]
    assert body["expires_in"] == pytest.approx(500)
    assert body["expired"] is False
    clock.advance(600)
    later = (await app.client.get("/api/v1/sessions/alice")).json()
    assert later["expired"] is True
    assert later["expires_in"] == 0


async def test_clearing_a_session_forgets_it(app: Running) -> None:
    await app.client.post("/api/v1/messages", json=image_message("bob", png_bytes()))
    cleared = await app.client.delete("/api/v1/sessions/bob")
    assert cleared.status_code == 200
    assert cleared.json() == {"user_id": "bob", "cleared": True}
    assert await app.ctx.engine.peek("bob") is None
    assert (await app.client.get("/api/v1/sessions/bob")).status_code == 404
    assert (await app.client.delete("/api/v1/sessions/bob")).status_code == 404
    answer = await app.client.post("/api/v1/messages", json=text_message("bob", "确认"))
    assert answer.json()["state"] == "idle"


async def test_orders_are_listed_filtered_and_shown_with_events(app: Running) -> None:
    one = (await report(app.client, "carol"))["order"]["number"]
    # elsewhere: at the same place, dave would be offered carol's order to add his report to
    two = (await report(app.client, "dave", "5号楼北侧"))["order"]["number"]
    listed = (await app.client.get("/api/v1/orders")).json()["orders"]
    assert [o["number"] for o in listed] == [two, one]
    mine = (await app.client.get("/api/v1/orders", params={"user_id": "carol"})).json()
    assert [o["number"] for o in mine["orders"]] == [one]
    closed = (await app.client.get("/api/v1/orders", params={"status": "closed"})).json()
    assert closed["orders"] == []
    shown = (await app.client.get(f"/api/v1/orders/{one}")).json()
    assert shown["number"] == one
    assert shown["reporter"] == "carol"
    assert [e["kind"] for e in shown["events"]] == ["created"]
    assert shown["events"][0]["actor"] == "carol"


async def test_an_external_order_with_a_photo(app: Running) -> None:
    photo = jpeg_bytes()
    created = await app.client.post(
        "/api/v1/orders",
        json={
            "alarm_type": "漏水",
            "description": "B1 停车场顶棚漏水",
            "location": "B1 停车场",
            "assignee": "erin",
            "image": {"data": b64(photo), "mime": "image/jpeg"},
        },
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "open"
    assert order["assignee"] == "erin"
    assert order["reporter"] == "alarm-system"
    key = order["image_key"]
    media = await app.client.get(f"/api/v1/media/{key}")
    assert media.status_code == 200
    assert media.content == photo
    assert media.headers["content-type"] == "image/jpeg"
    assigned = (await app.client.get("/api/v1/orders", params={"user_id": "erin"})).json()
    assert [o["number"] for o in assigned["orders"]] == [order["number"]]


async def test_an_external_order_without_a_photo(app: Running) -> None:
    created = await app.client.post(
        "/api/v1/orders", json={"alarm_type": "安全隐患", "location": "东门"}
    )
    assert created.status_code == 201
    assert created.json()["image_key"] is None
    assert len(await app.ctx.orders.list()) == 1


async def test_a_refused_external_order_creates_nothing(app: Running) -> None:
    refused = await app.client.post(
        "/api/v1/orders",
        json={"alarm_type": "漏水", "location": "B1", "image": {"data": b64(b"not an image")}},
    )
    assert refused.status_code == 415
    assert await app.ctx.orders.list() == []
