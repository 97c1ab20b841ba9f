"""Webhooks with two app instances (two outbox workers) on one orders database, SQLite and
PostgreSQL: every order change reaches a subscriber once, none twice, whichever worker fans it
out or sends it; and a receiver that fails at first still gets each change once it recovers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.outbox_kit import BACKENDS
from tests.harness.webhook_receiver import webhook_receiver
from tests.integration.http_kit import ADMIN_TOKEN, API_TOKEN, bearer, make_settings, running

pytestmark = pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)

ADMIN = bearer(ADMIN_TOKEN)
ORDERS = 30


async def test_two_workers_deliver_each_change_once(tmp_path: Path, orders_url: str) -> None:
    async with webhook_receiver() as receiver, AsyncExitStack() as stack:
        runs = []
        for name in ("a", "b"):
            settings = make_settings(
                tmp_path / name,
                api_token=API_TOKEN,
                admin_token=ADMIN_TOKEN,
                orders={"url": orders_url},
                webhooks={"allow_private": True},
                outbox={"poll_seconds": 0.05, "backoff_base_seconds": 0.05},
            )
            runs.append(await stack.enter_async_context(running(settings)))
        first = runs[0]
        hook = await first.client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url + "/hook", "events": ["order.created", "order.accepted"]},
            headers=ADMIN,
        )
        assert hook.status_code == 201, hook.text
        receiver.statuses = [500] * 5  # the first few attempts fail and are retried

        async def file_and_accept(i: int) -> None:
            run = runs[i % 2]
            created = await run.client.post(
                "/api/v1/orders",
                json={"alarm_type": "漏水", "location": f"B{i}", "assignee": "lisi"},
                headers=ADMIN,
            )
            assert created.status_code == 201, created.text
            number = created.json()["number"]
            accepted = await runs[(i + 1) % 2].client.post(
                f"/api/v1/orders/{number}/accept", headers=ADMIN
            )
            assert accepted.status_code == 200, accepted.text

        await asyncio.gather(*(file_and_accept(i) for i in range(ORDERS)))
        total = 2 * ORDERS + 5  # the five failed attempts are retried
        await receiver.wait_for(total)
        endpoint_id = hook.json()["id"]
        async with asyncio.timeout(30):
            while len(log := await _log(first.client, endpoint_id)) < total:
                await asyncio.sleep(0.05)
        assert len(log) == total
        assert sum(1 for e in log if e["status_code"] == 500) == 5
        assert len(receiver.received) == total  # no attempt was sent twice

        per_message = Counter(r.webhook_id for r in receiver.received)
        assert len(per_message) == 2 * ORDERS  # one message per change and subscriber
        events = Counter(
            (json.loads(r.body)["type"], json.loads(r.body)["data"]["number"])
            for r in receiver.received
        )
        assert len(events) == 2 * ORDERS
        assert sorted(per_message.values(), reverse=True)[:1] <= [6]


async def _log(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", params={"limit": 200}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found
