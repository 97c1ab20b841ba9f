"""Order notifications end to end: in-app through the HTTP API and WeCom app messages to the
fake WeCom server, delivered by the outbox worker that bootstrap starts; an outage delays
them, never loses them; dead letters are listed and retried through the admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapreport.channels.http import create_app
from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.base import OutboxMessage
from snapreport.outbox.notifications import SqlNotifications
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from tests.harness.fake_wecom import (
    TEST_AES_KEY,
    TEST_AGENT_ID,
    TEST_CORP_ID,
    TEST_SECRET,
    TEST_TOKEN,
    FakeWeCom,
    WeComPusher,
    wecom_settings,
)
from tests.harness.outbox_kit import order_message
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    bearer,
    make_settings,
    running,
)
from tests.integration.live_server import live_server

PUBLIC_URL = "https://snap.example.com"
FAST_RETRIES = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "poll_seconds": 0.05}


@pytest.fixture
async def service(tmp_path: Path, fake_wecom: FakeWeCom) -> AsyncIterator[Running]:
    async with serve(tmp_path, fake_wecom) as run:
        yield run


def serve(tmp_path: Path, fake: FakeWeCom, **outbox: Any) -> Any:
    settings = make_settings(
        tmp_path,
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        public_url=PUBLIC_URL,
        outbox={**FAST_RETRIES, **outbox},
        wecom={
            "corp_id": TEST_CORP_ID,
            "agent_id": TEST_AGENT_ID,
            "secret": TEST_SECRET,
            "token": TEST_TOKEN,
            "encoding_aes_key": TEST_AES_KEY,
            "api_base_url": fake.url,
        },
    )
    return running(settings)


async def put(run: Running, *messages: OutboxMessage) -> None:
    store = run.ctx.outbox
    assert isinstance(store, SqlOutboxStore)
    async with store.sessions() as session, session.begin():
        enqueue(session, *messages)


async def notifications(
    client: httpx.AsyncClient, user_id: str, after: str | None = None
) -> dict[str, Any]:
    params = {"after": after} if after else {}
    response = await client.get(
        f"/api/v1/users/{user_id}/notifications", params=params, headers=bearer(API_TOKEN)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(check: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll an async condition until it holds; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def drained(run: Running) -> bool:
    return (await run.ctx.outbox.counts())["pending"] == 0


async def test_an_order_change_reaches_every_recipient_in_app_and_wecom_users_by_card(
    service: Running, fake_wecom: FakeWeCom
) -> None:
    await service.ctx.notifications.mark_wecom_user("lisi")
    await put(service, order_message("WO-20261129-0001", text="新工单 WO-20261129-0001\n漏水"))

    async def both_have_one() -> bool:
        bodies = [await notifications(service.client, u) for u in ("lisi", "wangwu")]
        return all(len(b["notifications"]) == 1 for b in bodies)

    await until(both_have_one)
    [card] = await asyncio.to_thread(fake_wecom.wait_for_sent, 1)
    assert card["touser"] == "lisi"
    assert card["msgtype"] == "textcard"
    assert card["textcard"] == {
        "title": "新工单 WO-20261129-0001",
        "description": "漏水",
        "url": f"{PUBLIC_URL}/console/orders/WO-20261129-0001",
    }
    body = await notifications(service.client, "wangwu")
    [note] = body["notifications"]
    assert set(note) == {"id", "type", "order_number", "text", "created_at"}
    assert (note["type"], note["order_number"]) == ("order.created", "WO-20261129-0001")
    assert note["text"] == "新工单 WO-20261129-0001\n漏水"
    assert body["next_cursor"] is None
    assert (await notifications(service.client, "wangwu", after=note["id"]))["notifications"] == []
    # nothing is left to deliver, and nobody else was sent anything
    await until(lambda: drained(service))
    assert len(fake_wecom.sent) == 1
    assert await service.ctx.outbox.counts() == {"pending": 0, "dead": 0}


async def test_notifications_come_oldest_first_page_by_page(service: Running) -> None:
    await put(service, *(order_message(f"WO-{i}", recipients=["lisi"]) for i in range(5)))

    async def five() -> bool:
        return len((await notifications(service.client, "lisi"))["notifications"]) == 5

    await until(five)
    seen: list[str] = []
    after: str | None = None
    while True:
        response = await service.client.get(
            "/api/v1/users/lisi/notifications",
            params={"limit": 2, **({"after": after} if after else {})},
            headers=bearer(API_TOKEN),
        )
        page = response.json()
        seen += [n["order_number"] for n in page["notifications"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert sorted(seen) == [f"WO-{i}" for i in range(5)]
    assert len(seen) == 5


async def test_notifications_need_the_api_token_and_a_valid_cursor(service: Running) -> None:
    response = await service.client.get("/api/v1/users/lisi/notifications")
    assert response.status_code == 401
    response = await service.client.get(
        "/api/v1/users/lisi/notifications", params={"after": "x"}, headers=bearer(API_TOKEN)
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"]


async def test_wecom_down_for_a_while_delays_delivery_and_loses_nothing(
    service: Running, fake_wecom: FakeWeCom
) -> None:
    users = [f"u{i}" for i in range(5)]
    for user in users:
        await service.ctx.notifications.mark_wecom_user(user)
    fake_wecom.down = True
    await put(service, *(order_message(f"WO-{i}", recipients=users) for i in range(4)))
    # every recipient's job failed at least twice while WeCom was away
    await asyncio.to_thread(fake_wecom.wait_for, lambda f: f.refused >= 2 * 20)
    assert fake_wecom.sent == []
    fake_wecom.down = False

    sent = await asyncio.to_thread(fake_wecom.wait_for_sent, 20)

    async def drained() -> bool:
        return (await service.ctx.outbox.counts())["pending"] == 0

    await until(drained)
    pairs = sorted((m["touser"], m["textcard"]["url"]) for m in fake_wecom.sent)
    expected = sorted((u, f"{PUBLIC_URL}/console/orders/WO-{i}") for u in users for i in range(4))
    assert pairs == expected  # each once: none lost, none twice
    assert len(sent) >= 20


async def test_a_dead_letter_is_listed_and_retried_through_the_admin_api(
    tmp_path: Path, fake_wecom: FakeWeCom
) -> None:
    async with serve(tmp_path, fake_wecom, max_attempts=2) as run:
        await run.ctx.notifications.mark_wecom_user("lisi")
        fake_wecom.down = True
        await put(run, order_message("WO-7", recipients=["lisi"]))

        async def dead() -> list[dict[str, Any]]:
            response = await run.client.get("/api/v1/outbox/dead", headers=bearer(ADMIN_TOKEN))
            assert response.status_code == 200, response.text
            letters: list[dict[str, Any]] = response.json()["dead_letters"]
            return letters

        await until(dead)
        [letter] = await dead()
        assert letter["topic"] == "wecom.notify"
        assert letter["attempts"] == 2
        assert letter["payload"]["user_id"] == "lisi"
        assert "503" in letter["last_error"] or "unavailable" in letter["last_error"]
        metrics = (await run.client.get("/metrics")).text
        assert "snapreport_outbox_dead_letters 1.0" in metrics
        assert 'snapreport_outbox_dead_total{topic="wecom.notify"} 1.0' in metrics

        refused = await run.client.post(
            f"/api/v1/outbox/dead/{letter['id']}/retry", headers=bearer(API_TOKEN)
        )
        assert refused.status_code in (401, 403)
        fake_wecom.down = False
        retried = await run.client.post(
            f"/api/v1/outbox/dead/{letter['id']}/retry", headers=bearer(ADMIN_TOKEN)
        )
        assert retried.json() == {"id": letter["id"], "retried": True}
        [message] = await asyncio.to_thread(fake_wecom.wait_for_sent, 1)
        assert message["touser"] == "lisi"
        assert await dead() == []
        again = await run.client.post(
            f"/api/v1/outbox/dead/{letter['id']}/retry", headers=bearer(ADMIN_TOKEN)
        )
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"

        async def counted() -> bool:
            metrics = (await run.client.get("/metrics")).text
            return 'snapreport_outbox_delivered_total{topic="wecom.notify"} 1.0' in metrics

        await until(counted)


async def test_a_member_who_wrote_through_the_wecom_callback_is_sent_app_messages(
    tmp_path: Path, fake_wecom: FakeWeCom
) -> None:
    settings = wecom_settings(tmp_path, fake_wecom.url, public_url=PUBLIC_URL, outbox=FAST_RETRIES)
    with live_server(create_app(settings)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            answer = await asyncio.to_thread(pusher.push, pusher.text_xml("zhaoliu", "帮助"))
        finally:
            pusher.close()
        assert answer.status_code == 200
        [reply] = await asyncio.to_thread(fake_wecom.wait_for_sent, 1)
        assert (reply["touser"], reply["msgtype"]) == ("zhaoliu", "text")

        repo = await SqlOrderRepository.connect(settings.orders.url)
        try:
            store = SqlOutboxStore(repo.engine)
            async with store.sessions() as session, session.begin():
                enqueue(session, order_message("WO-5", recipients=["zhaoliu", "never_wrote"]))
            await asyncio.to_thread(fake_wecom.wait_for_sent, 2)

            async def delivered() -> bool:
                return (await store.counts())["pending"] == 0

            await until(delivered)
            inbox = SqlNotifications(repo.engine)
            assert len(await inbox.list("never_wrote", after=0, limit=10)) == 1
        finally:
            await repo.aclose()
    card = fake_wecom.sent[1]
    assert (card["touser"], card["msgtype"]) == ("zhaoliu", "textcard")
    assert len(fake_wecom.sent) == 2  # nothing over WeCom for the one who never wrote there
