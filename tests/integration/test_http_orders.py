"""The Staff API on orders (SQLite and PostgreSQL): who sees what (404), who may act (403),
races (409 naming the winner), every change, the filters and keyset pages; and a chat report
routed like an API order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.clock import FakeClock
from tests.harness.outbox_kit import BACKENDS
from tests.integration.dispatch_kit import RULES, outbox_rows
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    b64,
    bearer,
    image_message,
    make_settings,
    png_bytes,
    running,
    text_message,
)

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

ADMIN = bearer(ADMIN_TOKEN)


def as_user(user_id: str) -> dict[str, str]:
    """A trusted backend acting for ``user_id``."""
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


async def file_order(
    app: Running, location: str = "A区北门", alarm_type: str = "消防通道堵塞", **extra: Any
) -> dict[str, Any]:
    answer = await app.client.post(
        "/api/v1/orders",
        json={"alarm_type": alarm_type, "location": location, "description": "堵了", **extra},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_confirmed_chat_report_is_routed_by_type_and_place(app: Running) -> None:
    client = app.client
    api = bearer(API_TOKEN)
    await client.post("/api/v1/messages", json=image_message("alice", png_bytes()), headers=api)
    await client.post("/api/v1/messages", json=text_message("alice", "A区北门"), headers=api)
    await client.post("/api/v1/messages", json=text_message("alice", "类型 1"), headers=api)
    answer = await client.post("/api/v1/messages", json=text_message("alice", "确认"), headers=api)
    order = answer.json()["order"]
    assert (order["alarm_type"], order["team"], order["status"]) == ("消防通道堵塞", "fire", "open")
    assert order["due_accept_at"] is not None
    assert order["escalation"] == 0
    created = await outbox_rows(app.ctx.orders.engine, "order.created")  # type: ignore[attr-defined]
    assert [m.payload["recipients"] for m in created] == [["lisi", "wangwu"]]


async def test_who_sees_what(app: Running) -> None:
    fire = await file_order(app)
    mine = await file_order(app, "B区车库", "垃圾堆放", reporter="alice")  # property, to pm1
    client = app.client

    def numbers(body: dict[str, Any]) -> set[str]:
        return {o["number"] for o in body["orders"]}

    everything = {fire["number"], mine["number"]}
    assert numbers((await client.get("/api/v1/orders", headers=ADMIN)).json()) == everything
    seen_by = {
        user: numbers((await client.get("/api/v1/orders", headers=as_user(user))).json())
        for user in ("lisi", "zhaoliu", "pm1", "alice", "dispatcher1", "mallory")
    }
    assert seen_by == {
        "lisi": {fire["number"]},
        "zhaoliu": {fire["number"]},
        "pm1": {mine["number"]},
        "alice": {mine["number"]},
        "dispatcher1": everything,
        "mallory": set(),
    }
    hidden = await client.get(f"/api/v1/orders/{fire['number']}", headers=as_user("pm1"))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "order_not_found"
    for action, body in (("accept", {}), ("reject", {"reason": "x"}), ("close", {})):
        refused = await client.post(
            f"/api/v1/orders/{fire['number']}/{action}", json=body, headers=as_user("pm1")
        )
        assert refused.status_code == 404, action
    shown = await client.get(f"/api/v1/orders/{fire['number']}", headers=as_user("lisi"))
    assert shown.status_code == 200
    assert [e["kind"] for e in shown.json()["events"]] == ["created"]


async def test_seen_but_not_permitted_is_403_with_a_reason(app: Running) -> None:
    order = await file_order(app, reporter="alice")
    number = order["number"]
    client = app.client
    cases = [
        ("alice", "accept", {}),
        ("lisi", "reject", {"reason": "重复"}),
        ("lisi", "transfer", {"to": "property"}),
        ("lisi", "close", {"note": ""}),
    ]
    for user, action, body in cases:
        answer = await client.post(
            f"/api/v1/orders/{number}/{action}", json=body, headers=as_user(user)
        )
        assert answer.status_code == 403, (user, action, answer.text)
        error = answer.json()["error"]
        assert error["code"] in ("not_permitted", "not_order_owner")
        assert number in error["message"]
    unchanged = (await client.get(f"/api/v1/orders/{number}", headers=ADMIN)).json()
    assert unchanged["status"] == "open"
    assert [e["kind"] for e in unchanged["events"]] == ["created"]


async def test_accept_then_a_second_claimant_is_told_who_has_it(app: Running) -> None:
    number = (await file_order(app))["number"]
    client = app.client
    won = await client.post(f"/api/v1/orders/{number}/accept", headers=as_user("wangwu"))
    assert won.status_code == 200
    assert (won.json()["status"], won.json()["assignee"]) == ("accepted", "wangwu")
    assert won.json()["accepted_at"] is not None
    lost = await client.post(f"/api/v1/orders/{number}/accept", headers=as_user("lisi"))
    assert lost.status_code == 409
    assert lost.json()["error"]["code"] == "order_already_accepted"
    assert "wangwu" in lost.json()["error"]["message"]


async def test_every_change_over_http(app: Running, clock: FakeClock) -> None:
    number = (await file_order(app, reporter="alice"))["number"]
    client = app.client
    base = f"/api/v1/orders/{number}"

    moved = await client.post(f"{base}/transfer", json={"to": "lisi"}, headers=as_user("zhaoliu"))
    assert (moved.json()["assignee"], moved.json()["status"]) == ("lisi", "open")
    await client.post(f"{base}/accept", headers=as_user("lisi"))
    comment = await client.post(
        f"{base}/comments", json={"text": "下午到场"}, headers=as_user("lisi")
    )
    assert comment.status_code == 201
    assert comment.json()["events"][-1]["kind"] == "commented"
    closed = await client.post(
        f"{base}/close",
        json={"note": "已清理", "image": {"data": b64(png_bytes()), "mime": "image/png"}},
        headers=as_user("lisi"),
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["closed_by"], body["close_note"]) == ("closed", "lisi", "已清理")
    assert body["close_image_key"]
    reopened = await client.post(
        f"{base}/reopen", json={"reason": "还是堵"}, headers=as_user("alice")
    )
    assert (reopened.json()["status"], reopened.json()["assignee"]) == ("open", "lisi")
    rejected = await client.post(
        f"{base}/reject", json={"reason": "重复上报"}, headers=as_user("dispatcher1")
    )
    assert (rejected.json()["status"], rejected.json()["reject_reason"]) == (
        "rejected",
        "重复上报",
    )
    again = await client.post(f"{base}/accept", headers=as_user("lisi"))
    assert again.status_code == 409
    missing_reason = await client.post(f"{base}/reject", json={}, headers=as_user("zhaoliu"))
    assert missing_reason.status_code == 422
    kinds = [e["kind"] for e in (await client.get(base, headers=ADMIN)).json()["events"]]
    assert kinds == [
        "created", "transferred", "accepted", "commented", "closed", "reopened", "rejected"
    ]  # fmt: skip


async def test_filters_and_keyset_pages(app: Running, clock: FakeClock) -> None:
    filed = []
    for i in range(5):
        filed.append(await file_order(app, f"A区{i}号", reporter=f"r{i % 2}"))
        clock.advance(3600)
    other = await file_order(app, "B区车库", "垃圾堆放")
    client = app.client

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/orders", params=params, headers=ADMIN)).json()
        seen += [o["number"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [o["number"] for o in [other, *reversed(filed)]]

    async def numbers(**params: Any) -> list[str]:
        answer = await client.get("/api/v1/orders", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return [o["number"] for o in answer.json()["orders"]]

    assert await numbers(team="property") == [other["number"]]
    assert await numbers(reporter="r1") == [filed[3]["number"], filed[1]["number"]]
    assert await numbers(alarm_type="垃圾堆放") == [other["number"]]
    assert await numbers(q="a区2") == [filed[2]["number"]]
    assert await numbers(q=filed[4]["number"].lower()) == [filed[4]["number"]]
    assert await numbers(assignee="pm1") == [other["number"]]
    start = filed[1]["created_at"]
    end = filed[3]["created_at"]
    assert await numbers(**{"from": start, "to": end}) == [f["number"] for f in filed[2:0:-1]]
    # 5 hours on: the first orders are past their 30-minute acceptance deadline
    overdue = await numbers(overdue="true")
    assert filed[0]["number"] in overdue
    assert other["number"] not in overdue  # accept within 10 min, filed just now
    # the last fire order is late to be accepted, not yet to be fixed: accepting it helps
    assert filed[4]["number"] in overdue
    await client.post(f"/api/v1/orders/{filed[4]['number']}/accept", headers=as_user("lisi"))
    assert filed[4]["number"] not in await numbers(overdue="true")
    assert filed[0]["number"] in await numbers(overdue="true")  # late to be fixed
    assert await numbers(status="accepted") == [filed[4]["number"]]
    bad = await client.get("/api/v1/orders", params={"limit": 201}, headers=ADMIN)
    assert bad.status_code == 422
    naive = await client.get(
        "/api/v1/orders", params={"from": "2026-01-01T00:00:00"}, headers=ADMIN
    )
    assert naive.status_code == 400
    assert (
        await client.get("/api/v1/orders", params={"cursor": "x"}, headers=ADMIN)
    ).status_code == 400


async def test_the_service_token_must_name_the_acting_user(app: Running) -> None:
    answer = await app.client.get("/api/v1/orders", headers=bearer(API_TOKEN))
    assert answer.status_code == 401
    assert "X-Acting-User" in answer.json()["error"]["message"]
    assert (await app.client.get("/api/v1/orders")).status_code == 401
    bad = await app.client.get("/api/v1/orders", headers=as_user("not a user"))
    assert bad.status_code == 400
