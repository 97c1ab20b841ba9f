"""``snapreport serve --workers 4`` on Redis and PostgreSQL with dispatch: 200 users report at
once (each confirmation sent twice, as a retrying client would), every order is routed in turn
to the 50 members of a round_robin team, and every notification reaches its member exactly
once, in the app and through the fake WeCom API, whichever worker process filed or delivered
it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.sqlalchemy import SqlOutboxStore
from snapreport.outbox.tables import NotificationRow, OutboxRow
from tests.harness.fake_wecom import FakeWeCom
from tests.harness.postgres_server import fresh_database
from tests.harness.redis_server import free_port
from tests.integration.http_kit import b64, png_bytes
from tests.integration.outbox_processes import PUBLIC_URL, worker_env

pytestmark = pytest.mark.slow

USERS = 200
WORKERS = 4
CREW = [f"crew{i:02d}" for i in range(50)]  # 4 orders each: within WeCom's pacing
STARTUP_SECONDS = 180.0
RULES = f"""
[teams.crew]
members = {json.dumps(CREW)}
leads = ["boss"]
assign = "round_robin"

[default]
team = "crew"
accept_within = "1h"
resolve_within = "1d"
"""


@pytest.fixture
async def orders_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def server(
    tmp_path: Path, redis_url: str, redis_prefix: str, orders_url: str, fake_wecom: FakeWeCom
) -> Iterator[str]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    env = worker_env(tmp_path, orders_url, fake_wecom.url, poll_seconds="0.05")
    env.update(
        {
            "SNAPREPORT_SESSION__BACKEND": "redis",
            "SNAPREPORT_SESSION__URL": redis_url,
            "SNAPREPORT_SESSION__KEY_PREFIX": redis_prefix,
            "SNAPREPORT_DISPATCH__RULES_FILE": str(rules),
            "SNAPREPORT_RATE_LIMIT_PER_MINUTE": "1000",
        }
    )
    port = free_port()
    script = Path(sys.executable).with_name("snapreport")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(script), "serve", "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log_path)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    ready = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                ready += 1
                if ready >= WORKERS:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server was not ready within {STARTUP_SECONDS} s:\n{log.read_text()}")


async def _send(client: httpx.AsyncClient, body: dict[str, object]) -> dict[str, Any]:
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _report(client: httpx.AsyncClient, index: int) -> str:
    user = f"reporter-{index:03d}"
    photo = png_bytes(color=(index % 256, 7, 99))
    await _send(client, {"user_id": user, "message_id": f"{user}-1", "image": {"data": b64(photo)}})
    await _send(client, {"user_id": user, "message_id": f"{user}-2", "text": f"{index}号楼门口"})
    confirm: dict[str, object] = {"user_id": user, "message_id": f"{user}-3", "text": "确认"}
    answers = await asyncio.gather(_send(client, confirm), _send(client, confirm))
    numbers: set[str] = {a["order"]["number"] for a in answers}
    assert len(numbers) == 1
    return numbers.pop()


async def test_every_notification_exactly_once_across_four_processes(
    server: str, orders_url: str, fake_wecom: FakeWeCom
) -> None:
    # idle connections are dropped before the server's keep-alive timeout can close them
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=1)
    async with httpx.AsyncClient(base_url=server, timeout=120, limits=limits) as client:
        numbers = await asyncio.gather(*(_report(client, i) for i in range(USERS)))
    assert len(set(numbers)) == USERS

    await asyncio.to_thread(fake_wecom.wait_for_sent, USERS, 180)
    repo = await SqlOrderRepository.connect(orders_url)
    try:
        store = SqlOutboxStore(repo.engine)
        # what is left is the deadline checks of every order, due in an hour and in a day
        async with asyncio.timeout(120):
            while (await store.counts())["pending"] > 2 * USERS:
                await asyncio.sleep(0.1)
        orders = await repo.list(limit=1000)
        async with store.sessions() as session:
            rows = (await session.execute(select(NotificationRow))).scalars().all()
            left = (await session.execute(select(OutboxRow.topic))).scalars().all()
        assert Counter(left) == {"sla.check": 2 * USERS}
    finally:
        await repo.aclose()

    assert len(orders) == USERS
    by_member = Counter(order.assignee for order in orders)
    assert by_member == Counter({member: USERS // len(CREW) for member in CREW})  # in turn
    expected = {(order.assignee, order.number) for order in orders}
    notified = Counter((row.user_id, row.order_number) for row in rows)
    assert set(notified) == expected
    assert set(notified.values()) == {1}
    sent = Counter((m["touser"], m["textcard"]["url"].rsplit("/", 1)[-1]) for m in fake_wecom.sent)
    assert set(sent) == expected
    assert set(sent.values()) == {1}
    assert all(m["textcard"]["url"].startswith(PUBLIC_URL) for m in fake_wecom.sent)
