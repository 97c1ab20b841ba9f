"""Open311 filing when the orders database goes away and comes back: the refusal is the
specification's error with a 503, nothing half-filed is left, and the client's retry with the
same Idempotency-Key files exactly one order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.harness.postgres_server import fresh_database, start_postgres
from tests.integration.http_kit import running
from tests.integration.open311_kit import API_KEY, open311_settings

BASE = "/open311/v2"


async def test_a_database_outage_answers_503_and_the_retry_files_once(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_postgres)
    try:
        async with fresh_database(server.admin_url) as url:
            settings = open311_settings(tmp_path, orders={"url": url})
            form = {"api_key": API_KEY, "service_code": "漏水", "address_string": "B区 车库"}
            retry = {"Idempotency-Key": "outage-1"}
            async with running(settings) as app:
                post = app.client.post
                await asyncio.to_thread(server.stop)
                down = await post(f"{BASE}/requests.json", data=form, headers=retry)
                await asyncio.to_thread(server.start)
                up = await post(f"{BASE}/requests.json", data=form, headers=retry)
                again = await post(f"{BASE}/requests.json", data=form, headers=retry)
                listed = (await app.client.get(f"{BASE}/requests.json")).json()
    finally:
        await asyncio.to_thread(server.destroy)
    assert down.status_code == 503
    [error] = down.json()
    assert error["code"] == 503
    assert "unavailable" in error["description"]
    assert str(server.port) not in error["description"]  # no host or port shown
    assert up.status_code == 200
    assert again.content == up.content
    assert [r["service_request_id"] for r in listed] == [up.json()[0]["service_request_id"]]
