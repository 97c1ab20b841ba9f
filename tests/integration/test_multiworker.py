"""``snapreport serve --workers 4`` on Redis: 200 users report at once, each order exactly once.

The server is a real subprocess (the console script), on a free loopback port, with sessions,
idempotency and rate limits in Redis and orders in one SQLite file shared by the four workers.
Every user's confirmation is sent twice at once with the same message id (a client retrying),
and the photo of every user is sent while that user's other requests may be in flight in other
workers: the per-user lock and the deduplication must hold across processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from snapreport.orders.repository import SqlOrderRepository
from tests.harness.redis_server import free_port
from tests.integration.http_kit import b64, png_bytes

pytestmark = pytest.mark.slow

USERS = 200
WORKERS = 4
STARTUP_SECONDS = 60.0


@pytest.fixture
def server(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[tuple[str, str]]:
    port = free_port()
    orders_url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPREPORT_")}
    env.update(
        {
            "SNAPREPORT_SESSION__BACKEND": "redis",
            "SNAPREPORT_SESSION__URL": redis_url,
            "SNAPREPORT_SESSION__KEY_PREFIX": redis_prefix,
            "SNAPREPORT_ORDERS__URL": orders_url,
            "SNAPREPORT_MEDIA__ROOT": str(tmp_path / "media"),
            "SNAPREPORT_DATA_DIR": str(tmp_path),
            "SNAPREPORT_RATE_LIMIT_PER_MINUTE": "1000",
            "SNAPREPORT_LOG_LEVEL": "WARNING",
        }
    )
    script = Path(sys.executable).with_name("snapreport")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--workers", str(WORKERS)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, tmp_path / "server.log")
        yield url, orders_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    ready = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                ready += 1
                if ready >= WORKERS:  # likely answered by several workers by now
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server was not ready within {STARTUP_SECONDS} s:\n{log.read_text()}")


async def _send(client: httpx.AsyncClient, body: Mapping[str, object]) -> dict[str, object]:
    response = await client.post("/api/v1/messages", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def _report(client: httpx.AsyncClient, index: int) -> list[dict[str, object]]:
    user = f"worker-user-{index:03d}"
    photo = png_bytes(color=(index % 256, 7, 99))
    first = await _send(
        client,
        {"user_id": user, "message_id": f"{user}-1", "image": {"data": b64(photo)}},
    )
    assert first["state"] == "waiting_location"
    second = await _send(
        client, {"user_id": user, "message_id": f"{user}-2", "text": f"{index}号楼门口"}
    )
    assert second["state"] == "waiting_confirm"
    confirm = {"user_id": user, "message_id": f"{user}-3", "text": "确认"}
    answers = await asyncio.gather(_send(client, confirm), _send(client, confirm))
    return list(answers)


async def test_every_order_is_created_exactly_once(server: tuple[str, str]) -> None:
    url, orders_url = server
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        results = await asyncio.gather(*(_report(client, i) for i in range(USERS)))
    for pair in results:
        assert sorted(bool(a["duplicate"]) for a in pair) == [False, True]
        numbers = {a["order"]["number"] for a in pair}  # type: ignore[index]
        assert len(numbers) == 1
    repo = await SqlOrderRepository.connect(orders_url)
    try:
        orders = await repo.list(limit=1000)
    finally:
        await repo.aclose()
    per_user = Counter(order.reporter for order in orders)
    assert len(orders) == USERS
    assert len({order.number for order in orders}) == USERS
    assert set(per_user.values()) == {1}
    assert set(per_user) == {f"worker-user-{i:03d}" for i in range(USERS)}
