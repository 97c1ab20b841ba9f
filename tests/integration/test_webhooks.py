"""Webhooks end to end: the admin API, order changes fanned out through the outbox to a local
receiver, signatures verified with the specification's reference library and Svix's, the
retry schedule on an injected clock, rotation, redelivery, the delivery log, disabling after
five days of failures and enabling again, the clean-up of old log rows and messages, and
target checks when subscribing and again when sending."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from snapreport.orders.repository import SqlOrderRepository
from snapreport.webhooks.cleanup import WebhookCleanup
from tests.harness.clock import FakeClock
from tests.harness.webhook_receiver import Receiver, signed_by, webhook_receiver
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    bearer,
    make_settings,
    running,
)

ADMIN = bearer(ADMIN_TOKEN)
WAIT_SECONDS = 30.0
SCHEDULE_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as r:
        yield r


@asynccontextmanager
async def serve(
    tmp_path: Path, clock: FakeClock | None = None, *, allow_private: bool = True
) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path,
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        webhooks={"allow_private": allow_private},
        outbox={"poll_seconds": 0.05},
    )
    async with running(settings, clock=clock) as run:
        yield run


async def subscribe(client: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/webhooks", json={"url": url, "events": events, "description": "t"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_order(client: httpx.AsyncClient, location: str = "B1") -> str:
    response = await client.post(
        "/api/v1/orders",
        json={"alarm_type": "漏水", "location": location, "assignee": "lisi"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    number: str = response.json()["number"]
    return number


async def deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


async def wait_for_log(
    client: httpx.AsyncClient, endpoint_id: str, count: int
) -> list[dict[str, Any]]:
    """The delivery log once it has ``count`` entries (polled, bounded)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while len(found := await deliveries(client, endpoint_id)) < count:
            await asyncio.sleep(0.02)
    return found


async def test_an_order_change_arrives_signed_and_both_reference_verifiers_accept_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with serve(tmp_path) as run:
        created_only = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        everything = await subscribe(run.client, receiver.url + "/all", ["*"])
        assert created_only["secret"].startswith("whsec_")

        number = await new_order(run.client)
        (first,) = await receiver.wait_for(1)

        payload = Webhook(created_only["secret"]).verify(first.body, first.headers)
        SvixWebhook(created_only["secret"]).verify(first.body, first.headers)
        assert payload["type"] == "order.created"
        assert payload["data"]["number"] == number
        assert payload["data"]["status"] == "open"
        assert "T" in payload["timestamp"]
        assert first.webhook_id.startswith("msg_")
        with pytest.raises(WebhookVerificationError):
            Webhook(everything["secret"]).verify(first.body, first.headers)

        accepted = await run.client.post(f"/api/v1/orders/{number}/accept", headers=ADMIN)
        assert accepted.status_code == 200, accepted.text
        got = await receiver.wait_for(2, path="/all")
        types = [json.loads(r.body)["type"] for r in got]
        assert sorted(types) == ["order.accepted", "order.created"]
        for r in got:
            Webhook(everything["secret"]).verify(r.body, r.headers)
        # the accept went to "*" only; "order.created" subscribers saw one message
        assert len(receiver.to("/hook")) == 1

        (entry,) = await deliveries(run.client, created_only["id"])
        assert entry["status_code"] == 200
        assert entry["error"] is None
        assert entry["attempt"] == 1
        assert entry["next_attempt_at"] is None
        assert entry["message_id"] == first.webhook_id
        assert entry["event_type"] == "order.created"
        assert entry["response"] == "answer 200"

        listed = (await run.client.get("/api/v1/webhooks", headers=ADMIN)).json()["webhooks"]
        assert [w["id"] for w in listed] == [created_only["id"], everything["id"]]
        assert "secret" not in json.dumps(listed)
        assert listed[0]["events"] == ["order.created"]
        assert listed[0]["disabled"] is False


async def test_a_failing_receiver_is_retried_on_the_schedule_with_the_same_webhook_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    receiver.statuses = [500, 503]
    async with serve(tmp_path, clock) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client)

        await receiver.wait_for(1)
        (failed,) = await wait_for_log(run.client, hook["id"], 1)
        assert failed["status_code"] == 500
        assert failed["error"] == "HTTP 500"
        assert _seconds_between(failed["at"], failed["next_attempt_at"]) == 5

        clock.advance(5)
        await receiver.wait_for(2)
        log = await wait_for_log(run.client, hook["id"], 2)
        assert log[0]["attempt"] == 2
        assert log[0]["status_code"] == 503
        assert _seconds_between(log[0]["at"], log[0]["next_attempt_at"]) == 300

        clock.advance(300)
        got = await receiver.wait_for(3)
        log = await wait_for_log(run.client, hook["id"], 3)
        assert [e["attempt"] for e in log] == [3, 2, 1]
        assert [e["status_code"] for e in log] == [200, 503, 500]
        assert log[0]["error"] is None
        assert log[0]["next_attempt_at"] is None
        assert len({r.webhook_id for r in got}) == 1
        assert len({r.body for r in got}) == 1
        assert [r.timestamp for r in got] == sorted(r.timestamp for r in got)
        assert all(signed_by(hook["secret"], r) for r in got)


async def test_after_the_last_retry_the_message_is_given_up(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    receiver.statuses = [500] * 20
    async with serve(tmp_path, clock) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client)
        await wait_for_log(run.client, hook["id"], 1)
        for n, wait in enumerate(SCHEDULE_SECONDS, start=2):
            clock.advance(wait)
            await wait_for_log(run.client, hook["id"], n)
        log = await deliveries(run.client, hook["id"])
        assert [e["attempt"] for e in log] == list(range(8, 0, -1))
        assert log[0]["next_attempt_at"] is None
        clock.advance(10 * 3600)
        # a redelivery goes after everything still queued: when it arrives, nothing else did
        await run.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{log[0]['delivery_id']}/redeliver",
            headers=ADMIN,
        )
        await wait_for_log(run.client, hook["id"], 9)
        assert len(receiver.received) == 9


async def test_a_redirect_is_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [302]
    receiver.headers_for = lambda status: {"Location": receiver.url + "/elsewhere"}
    async with serve(tmp_path) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client)
        (entry,) = await wait_for_log(run.client, hook["id"], 1)
        assert entry["status_code"] == 302
        assert "redirects are not followed" in entry["error"]
        assert entry["next_attempt_at"] is not None
        assert [r.path for r in receiver.received] == ["/hook"]


async def test_after_a_rotation_both_secrets_sign_for_a_day(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    async with serve(tmp_path, clock) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        rotated = await run.client.post(
            f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=ADMIN
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_")
        assert new_secret != hook["secret"]

        await new_order(run.client, "B1")
        (during,) = await receiver.wait_for(1)
        assert len(during.signatures) == 2
        assert all(s.startswith("v1,") for s in during.signatures)
        Webhook(hook["secret"]).verify(during.body, during.headers)
        Webhook(new_secret).verify(during.body, during.headers)
        SvixWebhook(hook["secret"]).verify(during.body, during.headers)
        SvixWebhook(new_secret).verify(during.body, during.headers)

        clock.advance(24 * 3600 + 1)
        await new_order(run.client, "B2")
        got = await receiver.wait_for(2)
        after = got[1]
        assert len(after.signatures) == 1
        assert signed_by(new_secret, after)
        assert not signed_by(hook["secret"], after)


async def test_redelivery_sends_the_same_message_again(tmp_path: Path, receiver: Receiver) -> None:
    async with serve(tmp_path) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client)
        (entry,) = await wait_for_log(run.client, hook["id"], 1)

        response = await run.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{entry['delivery_id']}/redeliver",
            headers=ADMIN,
        )
        assert response.status_code == 202, response.text
        assert response.json()["message_id"] == entry["message_id"]
        first, again = await receiver.wait_for(2)
        assert again.webhook_id == first.webhook_id
        assert again.body == first.body
        Webhook(hook["secret"]).verify(again.body, again.headers)
        log = await wait_for_log(run.client, hook["id"], 2)
        assert [e["attempt"] for e in log] == [2, 1]

        missing = await run.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/999999/redeliver", headers=ADMIN
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "webhook_not_found"


async def test_an_endpoint_failing_for_five_days_is_disabled(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    receiver.statuses = [500] * 50
    async with webhook_receiver() as healthy, serve(tmp_path, clock) as run:
        failing = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        witness = await subscribe(run.client, healthy.url + "/hook", ["order.created"])
        await new_order(run.client, "B1")
        await wait_for_log(run.client, failing["id"], 1)

        clock.advance(4 * 86400)  # failing for four days: not disabled yet
        await wait_for_log(run.client, failing["id"], 2)
        webhook = await _webhook(run.client, failing["id"])
        assert webhook["disabled"] is False
        assert webhook["failing_since"] is not None

        clock.advance(86400)  # the next retry fails five days after the first failure
        await wait_for_log(run.client, failing["id"], 3)
        webhook = await _webhook(run.client, failing["id"])
        assert webhook["disabled"] is True
        assert webhook["disabled_at"] is not None
        assert (await deliveries(run.client, failing["id"]))[0]["next_attempt_at"] is None

        number = await new_order(run.client, "B2")
        got = await healthy.wait_for(2)
        assert json.loads(got[-1].body)["data"]["number"] == number
        # the second order was never fanned out to the disabled endpoint
        await wait_for_log(run.client, witness["id"], 2)
        assert len(await deliveries(run.client, failing["id"])) == 3
        assert len(receiver.received) == 3


async def test_a_disabled_endpoint_is_enabled_again_with_its_failure_clock_reset(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    receiver.statuses = [500] * 3
    async with serve(tmp_path, clock) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client, "B1")
        await wait_for_log(run.client, hook["id"], 1)
        clock.advance(4 * 86400)
        await wait_for_log(run.client, hook["id"], 2)
        clock.advance(86400)
        await wait_for_log(run.client, hook["id"], 3)
        assert (await _webhook(run.client, hook["id"]))["disabled"] is True

        skipped = await new_order(run.client, "B2")  # not fanned out to a disabled endpoint
        async with asyncio.timeout(WAIT_SECONDS):  # its fan-out ran (with its notifications)
            while skipped not in [
                n.order_number for n in await run.ctx.notifications.list("lisi", after=0, limit=50)
            ]:
                await asyncio.sleep(0.02)
        staff = {**bearer(API_TOKEN), "X-Acting-User": "lisi"}
        refused = await run.client.post(f"/api/v1/webhooks/{hook['id']}/enable", headers=staff)
        assert refused.status_code == 403
        enabled = await run.client.post(f"/api/v1/webhooks/{hook['id']}/enable", headers=ADMIN)
        assert enabled.status_code == 200, enabled.text
        body = enabled.json()
        assert body["id"] == hook["id"]
        assert body["disabled"] is False
        assert body["disabled_at"] is None
        assert body["failing_since"] is None
        assert await _webhook(run.client, hook["id"]) == body

        number = await new_order(run.client, "B3")
        got = await receiver.wait_for(4)
        assert json.loads(got[-1].body)["data"]["number"] == number
        log = await wait_for_log(run.client, hook["id"], 4)
        assert log[0]["status_code"] == 200
        assert len(receiver.received) == 4  # B2 was never sent

        missing = await run.client.post("/api/v1/webhooks/ep_nope/enable", headers=ADMIN)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "webhook_not_found"


async def test_old_log_rows_and_messages_are_cleaned_up_by_age(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock(time.time())
    async with serve(tmp_path, clock) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
        await new_order(run.client, "B1")
        (old,) = await wait_for_log(run.client, hook["id"], 1)

        clock.advance(31 * 86400)
        # the old message, sent again today, keeps its message; its old log row goes
        redelivered = await run.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{old['delivery_id']}/redeliver",
            headers=ADMIN,
        )
        assert redelivered.status_code == 202, redelivered.text
        await new_order(run.client, "B2")
        await wait_for_log(run.client, hook["id"], 3)

        repo = await SqlOrderRepository.connect(str(run.ctx.settings.orders.url))
        try:
            cleanup = WebhookCleanup(repo.engine, keep_days=30, clock=clock)
            assert await cleanup.run_once() == (1, 0)
            log = await deliveries(run.client, hook["id"])
            assert [e["delivery_id"] for e in log if e["delivery_id"] == old["delivery_id"]] == []
            assert [e["message_id"] for e in log].count(old["message_id"]) == 1
            assert await cleanup.run_once() == (0, 0)  # nothing more is old

            clock.advance(31 * 86400)
            assert await cleanup.run_once() == (2, 2)
            assert await deliveries(run.client, hook["id"]) == []
            # a redelivery of a cleaned-up delivery is refused, naming it
            gone = await run.client.post(
                f"/api/v1/webhooks/{hook['id']}/deliveries/{old['delivery_id']}/redeliver",
                headers=ADMIN,
            )
            assert gone.status_code == 404
        finally:
            await repo.aclose()


async def test_unsafe_targets_are_refused_when_subscribing(tmp_path: Path) -> None:
    async with serve(tmp_path, allow_private=False) as run:
        for url, reason in [
            ("http://localhost:8080/hook", "loopback"),
            ("http://127.0.0.1/hook", "loopback"),
            ("http://10.1.2.3/hook", "private"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://[::1]/hook", "loopback"),
            ("http://[::ffff:127.0.0.1]/hook", "loopback"),
            ("http://224.0.0.1/hook", "multicast"),
            ("http://240.0.0.1/hook", "reserved"),
            ("http://0.0.0.0/hook", "unspecified"),
            ("ftp://93.184.216.34/hook", "http:// or https://"),
            ("http://user:pw@93.184.216.34/hook", "credentials"),
            ("http:///hook", "needs a host"),
        ]:
            response = await run.client.post(
                "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=ADMIN
            )
            assert response.status_code == 400, (url, response.text)
            error = response.json()["error"]
            assert error["code"] == "webhook_url_refused", url
            assert reason in error["message"], (url, error["message"])

        ok = await run.client.post(
            "/api/v1/webhooks",
            json={"url": "https://93.184.216.34/hook", "events": ["order.closed"]},
            headers=ADMIN,
        )
        assert ok.status_code == 201, ok.text


async def test_a_target_that_became_private_is_refused_at_send_time(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with serve(tmp_path, allow_private=True) as run:
        hook = await subscribe(run.client, receiver.url + "/hook", ["order.created"])
    # the same database, now without private targets: "localhost" resolves to 127.0.0.1
    async with serve(tmp_path, allow_private=False) as run:
        await new_order(run.client)
        (entry,) = await wait_for_log(run.client, hook["id"], 1)
        assert entry["status_code"] is None
        assert entry["error"].startswith("refused (private_address)")
        assert "127.0.0.1" in entry["error"] or "::1" in entry["error"]
        assert entry["next_attempt_at"] is not None
        assert receiver.received == []


async def test_only_admins_manage_webhooks(tmp_path: Path) -> None:
    async with serve(tmp_path) as run:
        body = {"url": "https://93.184.216.34/hook", "events": ["*"]}
        anonymous = await run.client.post("/api/v1/webhooks", json=body)
        assert anonymous.status_code == 401
        staff = {**bearer(API_TOKEN), "X-Acting-User": "lisi"}
        refused = await run.client.post("/api/v1/webhooks", json=body, headers=staff)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "not_permitted"
        assert (await run.client.get("/api/v1/webhooks", headers=staff)).status_code == 403

        for events, code in [([], 422), (["order.nope"], 400), (["*", "order.closed"], 400)]:
            bad = await run.client.post(
                "/api/v1/webhooks", json={**body, "events": events}, headers=ADMIN
            )
            assert bad.status_code == code, (events, bad.text)

        hook = await subscribe(run.client, "https://93.184.216.34/hook", ["*"])
        deleted = await run.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=ADMIN)
        assert deleted.json() == {"id": hook["id"], "deleted": True}
        again = await run.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=ADMIN)
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "webhook_not_found"
        listed = await run.client.get("/api/v1/webhooks", headers=ADMIN)
        assert listed.json() == {"webhooks": []}


async def _webhook(client: httpx.AsyncClient, endpoint_id: str) -> dict[str, Any]:
    listed = (await client.get("/api/v1/webhooks", headers=ADMIN)).json()["webhooks"]
    (found,) = [w for w in listed if w["id"] == endpoint_id]
    return dict(found)


def _seconds_between(start: str, end: str) -> float:
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
