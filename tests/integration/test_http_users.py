"""User endpoints for the web page: a user's orders, their photos (and nobody else's), their
session state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.clock import FakeClock
from tests.integration.http_kit import (
    Running,
    b64,
    image_message,
    make_settings,
    png_bytes,
    report,
    running,
)


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(make_settings(tmp_path), clock=clock) as r:
        yield r


async def test_a_users_orders_link_their_photos(app: Running) -> None:
    number = (await report(app.client, "alice"))["order"]["number"]
    body = (await app.client.get("/api/v1/users/alice/orders")).json()
    assert [o["number"] for o in body["orders"]] == [number]
    url = body["orders"][0]["image_url"]
    key = body["orders"][0]["image_key"]
    assert url == f"/api/v1/users/alice/media/{key}"
    photo = await app.client.get(url)
    assert photo.status_code == 200
    assert photo.content == png_bytes()
    assert photo.headers["content-type"] == "image/png"


async def test_orders_without_photos_have_no_image_url(app: Running) -> None:
    await app.client.post(
        "/api/v1/orders", json={"alarm_type": "漏水", "location": "B1", "assignee": "bob"}
    )
    body = (await app.client.get("/api/v1/users/bob/orders")).json()
    assert len(body["orders"]) == 1
    assert body["orders"][0]["image_url"] is None
    assert (await app.client.get("/api/v1/users/nobody/orders")).json() == {"orders": []}


async def test_nobody_sees_another_users_photos(app: Running) -> None:
    await report(app.client, "alice")
    key = (await app.client.get("/api/v1/users/alice/orders")).json()["orders"][0]["image_key"]
    stolen = await app.client.get(f"/api/v1/users/mallory/media/{key}")
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "media_not_found"


async def test_the_assignee_sees_the_photo_of_an_order(app: Running) -> None:
    created = await app.client.post(
        "/api/v1/orders",
        json={
            "alarm_type": "漏水",
            "location": "B1",
            "assignee": "carol",
            "image": {"data": b64(png_bytes(color=(1, 2, 3)))},
        },
    )
    key = created.json()["image_key"]
    assert (await app.client.get(f"/api/v1/users/carol/media/{key}")).status_code == 200


async def test_a_pending_photo_of_the_live_session_is_visible(
    app: Running, clock: FakeClock
) -> None:
    photo = png_bytes(color=(9, 9, 9))
    await app.client.post("/api/v1/messages", json=image_message("dave", photo))
    info = await app.ctx.engine.peek("dave")
    assert info is not None
    key = info.session.slots.image_key
    seen = await app.client.get(f"/api/v1/users/dave/media/{key}")
    assert seen.content == photo
    assert (await app.client.get(f"/api/v1/users/erin/media/{key}")).status_code == 404
    clock.advance(601)  # the session expired: its photo is no longer the user's to see
    assert (await app.client.get(f"/api/v1/users/dave/media/{key}")).status_code == 404


async def test_the_session_state_and_its_expiry(app: Running, clock: FakeClock) -> None:
    assert (await app.client.get("/api/v1/users/frank/session")).json() == {
        "state": "idle",
        "expires_in": None,
    }
    await app.client.post("/api/v1/messages", json=image_message("frank", png_bytes()))
    clock.advance(60)
    body = (await app.client.get("/api/v1/users/frank/session")).json()
    assert body == {"state": "waiting_location", "expires_in": pytest.approx(540)}
    clock.advance(541)
    assert (await app.client.get("/api/v1/users/frank/session")).json() == {
        "state": "idle",
        "expires_in": None,
    }
