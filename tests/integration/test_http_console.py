"""What the console asks beyond the Staff API (SQLite and PostgreSQL): the page itself, an
order's allowed actions, the notifications sent about it, its photos, the list's repeated
``status`` filter and the figures of one type. Who may see an order is the Staff API's rule:
404 otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.dispatch_kit import RULES
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    b64,
    bearer,
    jpeg_bytes,
    make_settings,
    png_bytes,
    running,
)

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

ADMIN = bearer(ADMIN_TOKEN)
DELIVERY_SECONDS = 10.0


def as_user(user_id: str) -> dict[str, str]:
    return {**bearer(API_TOKEN), "X-Acting-User": user_id}


@pytest.fixture
async def app(orders_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Running]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    settings = make_settings(
        tmp_path,
        orders={"url": orders_url},
        dispatch={"rules_file": rules},
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
    )
    async with running(settings, clock=clock) as r:
        yield r


async def file_order(app: Running, location: str = "A区北门", **extra: Any) -> dict[str, Any]:
    answer = await app.client.post(
        "/api/v1/orders",
        json={"alarm_type": "消防通道堵塞", "location": location, "description": "堵了", **extra},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def actions(app: Running, number: str, user: str) -> list[str]:
    answer = await app.client.get(f"/api/v1/orders/{number}/actions", headers=as_user(user))
    assert answer.status_code == 200, answer.text
    found: list[str] = answer.json()["actions"]
    return found


async def test_the_page_and_its_deep_links_are_served_under_the_page_policy(
    app: Running,
) -> None:
    for path in ("/console", "/console/", "/console/orders/WO-20261101-0001", "/console/dashboard"):
        answer = await app.client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert 'src="/static/console/console.js"' in answer.text
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
    for path in ("/static/console/console.js", "/static/vendor/chartjs/chart.umd.min.js"):
        assert (await app.client.get(path)).status_code == 200, path


async def test_actions_follow_roles_and_status(app: Running) -> None:
    number = (await file_order(app, reporter="alice"))["number"]
    assert await actions(app, number, "lisi") == ["accept", "comment"]
    assert await actions(app, number, "zhaoliu") == [
        "accept",
        "transfer",
        "reject",
        "close",
        "comment",
    ]
    assert await actions(app, number, "alice") == ["close", "comment"]
    assert await actions(app, number, "dispatcher1") == [
        "accept",
        "transfer",
        "reject",
        "close",
        "comment",
    ]
    accepted = await app.client.post(f"/api/v1/orders/{number}/accept", headers=as_user("lisi"))
    assert accepted.status_code == 200
    assert await actions(app, number, "lisi") == ["transfer", "close", "comment"]
    assert await actions(app, number, "wangwu") == ["comment"]
    closed = await app.client.post(
        f"/api/v1/orders/{number}/close", json={"note": "ok"}, headers=as_user("lisi")
    )
    assert closed.status_code == 200
    assert await actions(app, number, "lisi") == ["reopen", "comment"]
    assert await actions(app, number, "alice") == ["reopen", "comment"]
    # another team's member does not see it at all
    hidden = await app.client.get(f"/api/v1/orders/{number}/actions", headers=as_user("pm1"))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "order_not_found"


async def test_notifications_sent_about_an_order(app: Running) -> None:
    number = (await file_order(app, reporter="alice"))["number"]
    await app.client.post(f"/api/v1/orders/{number}/accept", headers=as_user("wangwu"))
    path = f"/api/v1/orders/{number}/notifications"
    wanted = {("lisi", "order.created"), ("wangwu", "order.created"), ("alice", "order.accepted")}
    sent: set[tuple[str, str]] = set()
    async with asyncio.timeout(DELIVERY_SECONDS):  # the outbox workers deliver them
        while sent != wanted:
            answer = await app.client.get(path, headers=as_user("zhaoliu"))
            assert answer.status_code == 200
            body = answer.json()["notifications"]
            sent = {(n["user_id"], n["type"]) for n in body}
            assert sent <= wanted, sent
            await asyncio.sleep(0.05)
    assert all(number in n["text"] for n in body)
    assert [n["created_at"] for n in body] == sorted(n["created_at"] for n in body)
    other = (await file_order(app, "B区车库"))["number"]
    hidden = await app.client.get(f"/api/v1/orders/{other}/notifications", headers=as_user("lisi"))
    assert hidden.status_code == 404


async def test_photos_before_and_after_to_whoever_sees_the_order(app: Running) -> None:
    before = png_bytes(32, 24)
    order = await file_order(app, image={"data": b64(before), "mime": "image/png"})
    number = order["number"]
    client = app.client
    # a member of the team, who neither reported nor was assigned it
    shown = await client.get(f"/api/v1/orders/{number}/photos/report", headers=as_user("wangwu"))
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "image/png"
    assert shown.content.startswith(b"\x89PNG")
    missing = await client.get(f"/api/v1/orders/{number}/photos/close", headers=as_user("lisi"))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "media_not_found")
    after = jpeg_bytes(40, 30)
    closed = await client.post(
        f"/api/v1/orders/{number}/close",
        json={"note": "修好了", "image": {"data": b64(after), "mime": "image/jpeg"}},
        headers=as_user("zhaoliu"),
    )
    assert closed.status_code == 200, closed.text
    shown = await client.get(f"/api/v1/orders/{number}/photos/close", headers=as_user("lisi"))
    assert (shown.status_code, shown.headers["content-type"]) == (200, "image/jpeg")
    for who in ("pm1", "mallory"):
        hidden = await client.get(f"/api/v1/orders/{number}/photos/report", headers=as_user(who))
        assert hidden.status_code == 404, who
    bad = await client.get(f"/api/v1/orders/{number}/photos/other", headers=ADMIN)
    assert bad.status_code == 422


async def chat_report(app: Running, user: str, photos: list[tuple[bytes, str]]) -> str:
    """A report with several photos through the chat (``再发一张`` before each further one),
    at A区北门; the new order's number."""
    sent = 0

    async def send(**body: Any) -> dict[str, Any]:
        nonlocal sent
        sent += 1
        answer = await app.client.post(
            "/api/v1/messages",
            json={"user_id": user, "message_id": f"{user}-{sent}", **body},
            headers=bearer(API_TOKEN),
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    for i, (data, mime) in enumerate(photos):
        if i:
            await send(text="再发一张")
        await send(image={"data": b64(data), "mime": mime})
    await send(text="A区北门")
    filed = await send(text="确认")
    assert len(filed["order"]["image_keys"]) == len(photos), filed
    number: str = filed["order"]["number"]
    return number


async def test_every_report_photo_by_its_index(app: Running) -> None:
    first, second, third = png_bytes(32, 24), jpeg_bytes(40, 30), png_bytes(20, 20)
    number = await chat_report(
        app, "zhangsan", [(first, "image/png"), (second, "image/jpeg"), (third, "image/png")]
    )
    client = app.client
    base = f"/api/v1/orders/{number}/photos/report"
    sizes = []
    for index, mime in enumerate(("image/png", "image/jpeg", "image/png")):
        # the reporter and a member of the team, who neither reported nor was assigned it
        for who in ("zhangsan", "wangwu"):
            shown = await client.get(f"{base}?index={index}", headers=as_user(who))
            assert (shown.status_code, shown.headers["content-type"]) == (200, mime), who
        sizes.append(len(shown.content))
    assert len(set(sizes)) == 3  # three different photos
    # no index: the first, exactly as before
    default = await client.get(base, headers=as_user("wangwu"))
    first_shown = await client.get(f"{base}?index=0", headers=as_user("wangwu"))
    assert default.content == first_shown.content
    # out of range: 404 naming the range; a bad value: 422 naming the parameter
    beyond = await client.get(f"{base}?index=3", headers=as_user("wangwu"))
    assert (beyond.status_code, beyond.json()["error"]["code"]) == (404, "media_not_found")
    assert "index 3 is out of range (0-2)" in beyond.json()["error"]["message"]
    for bad in ("-1", "two", "1.5"):
        refused = await client.get(f"{base}?index={bad}", headers=as_user("wangwu"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
        assert "index" in refused.json()["error"]["message"], bad
    # the close photo is one: index 0 is it, index 1 is out of range
    none = await client.get(f"/api/v1/orders/{number}/photos/close?index=0", headers=ADMIN)
    assert (none.status_code, none.json()["error"]["message"]) == (
        404,
        f"{number} has no close photo",
    )
    closed = await client.post(
        f"/api/v1/orders/{number}/close",
        json={"note": "修好了", "image": {"data": b64(jpeg_bytes(50, 40)), "mime": "image/jpeg"}},
        headers=as_user("zhaoliu"),
    )
    assert closed.status_code == 200, closed.text
    after = await client.get(f"/api/v1/orders/{number}/photos/close?index=0", headers=ADMIN)
    assert (after.status_code, after.headers["content-type"]) == (200, "image/jpeg")
    beyond = await client.get(f"/api/v1/orders/{number}/photos/close?index=1", headers=ADMIN)
    assert beyond.status_code == 404
    assert "index 1 is out of range (0-0)" in beyond.json()["error"]["message"]
    # whoever may not see the order gets 404 whatever the index, as without one
    for who in ("pm1", "mallory"):
        for query in ("", "?index=1", "?index=7"):
            hidden = await client.get(base + query, headers=as_user(who))
            assert (hidden.status_code, hidden.json()["error"]["code"]) == (
                404,
                "order_not_found",
            ), (who, query)


async def test_status_may_be_repeated(app: Running) -> None:
    first = (await file_order(app, "A区一"))["number"]
    second = (await file_order(app, "A区二"))["number"]
    third = (await file_order(app, "A区三"))["number"]
    await app.client.post(f"/api/v1/orders/{second}/accept", headers=as_user("lisi"))
    await app.client.post(
        f"/api/v1/orders/{third}/reject", json={"reason": "重复"}, headers=as_user("zhaoliu")
    )

    async def listed(query: str) -> list[str]:
        answer = await app.client.get(f"/api/v1/orders?{query}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return [o["number"] for o in answer.json()["orders"]]

    assert await listed("status=open&status=accepted") == [second, first]
    assert await listed("status=open") == [first]
    assert await listed("status=rejected&status=rejected") == [third]
    assert await listed("") == [third, second, first]
    refused = await app.client.get("/api/v1/orders?status=open&status=lost", headers=ADMIN)
    assert refused.status_code == 422


async def test_stats_of_one_type(app: Running) -> None:
    """The dashboard's per-day figures of each type: ``alarm_type`` keeps one type's orders,
    within what the caller may see."""
    for location, alarm_type in (
        ("A区一", "消防通道堵塞"),
        ("A区二", "消防通道堵塞"),
        ("A区三", "消防设施损坏"),
        ("B区一", "垃圾堆放"),
    ):
        await file_order(app, location, alarm_type=alarm_type)

    async def created(query: str, user: str = "dispatcher1") -> dict[str | None, int]:
        answer = await app.client.get(f"/api/v1/stats?{query}", headers=as_user(user))
        assert answer.status_code == 200, answer.text
        return {g["key"]: g["created"] for g in answer.json()["groups"] if g["created"]}

    [today] = (await created("group_by=day")).keys()
    assert await created("group_by=day") == {today: 4}
    assert await created("group_by=day&alarm_type=消防通道堵塞") == {today: 2}
    assert await created("group_by=team&alarm_type=消防设施损坏") == {"fire": 1}
    assert await created("group_by=day&alarm_type=垃圾堆放", "lisi") == {}
    assert await created("group_by=day&alarm_type=垃圾堆放", "pm1") == {today: 1}
    assert await created("group_by=day&alarm_type=没有") == {}
    refused = await app.client.get("/api/v1/stats?alarm_type=", headers=ADMIN)
    assert refused.status_code == 422
