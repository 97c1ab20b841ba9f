"""A confirmation retried after a fault files its work order exactly once (per message id).

Each test runs the real server (a ``snapreport serve`` process) on real stores and stops it, or
its session store, after the work order was written and before the session was saved: the
confirmation's client sees an error (or a dead connection) while the order exists and the
session still waits for a confirmation. The retry, with the same ``message_id``, must answer
with that order, move the session to ``idle``, and file nothing more.

The point between the two writes is reached without sleeps: the test holds the orders
database's write lock, sends the confirmation, waits until the server holds the user's session
lock (it is then blocked in the orders write), takes the session store away (its write lock,
``CLIENT PAUSE WRITE`` or SIGKILL of redis-server), and only then lets the orders write
through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from snapreport.channels.http.idempotency import Idempotency
from tests.harness.redis_server import RedisServer
from tests.integration._server_process import (
    ServerProcess,
    query,
    server,
    until,
    write_locked,
)
from tests.integration.http_kit import b64, png_bytes

pytestmark = pytest.mark.slow

# far above the bound a retry after a crash is answered within (the session lock TTL, 10 s by
# default) and far below what it was before (85-90 s): a retry that waits it out has failed
RETRY_TIMEOUT_SECONDS = 45.0
# a confirmation whose session store is away fails within the store's own waits; a retry that
# must wait for a claim left by a failed attempt gets as long (the question is then not when
# it is answered but whether it files a second order)
SLOW_TIMEOUT_SECONDS = 120.0
LOCK_TTL_SECONDS = 10.0  # the default of SNAPREPORT_SESSION__LOCK_TTL_SECONDS


def _orders_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _orders(path: Path, user: str) -> list[str]:
    rows = query(path, "SELECT number FROM work_orders WHERE reporter = ? ORDER BY id", user)
    return [str(row[0]) for row in rows]


def _all_orders(path: Path) -> list[tuple[str, str]]:
    rows = query(path, "SELECT reporter, number FROM work_orders ORDER BY id")
    return [(str(reporter), str(number)) for reporter, number in rows]


async def _post(
    client: httpx.AsyncClient, body: dict[str, Any], timeout: float = 60.0
) -> httpx.Response:
    return await client.post("/api/v1/messages", json=body, timeout=timeout)


async def _prepare(client: httpx.AsyncClient, user: str) -> None:
    """A report waiting for its confirmation, at a place of the user's own (reports of the
    same type at one place would be offered as duplicates of each other)."""
    photo = {"user_id": user, "message_id": f"{user}-photo", "image": {"data": b64(png_bytes())}}
    answer = await _post(client, photo)
    assert answer.status_code == 200, answer.text
    place = {"user_id": user, "message_id": f"{user}-place", "text": f"3号楼东侧楼梯间 {user}"}
    answer = await _post(client, place)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "waiting_confirm"


def _confirm(user: str) -> dict[str, Any]:
    return {"user_id": user, "message_id": f"{user}-confirm", "text": "确认"}


def _assert_answered_with(answer: httpx.Response, number: str) -> None:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "idle"
    assert body["order"]["number"] == number
    assert number in body["replies"][0]["text"]


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=10)
    try:
        yield client
    finally:
        client.close()


def _redis_settings(redis_server: RedisServer, orders: Path) -> dict[str, str]:
    return {
        "SNAPREPORT_SESSION__BACKEND": "redis",
        "SNAPREPORT_SESSION__URL": redis_server.url,
        "SNAPREPORT_SESSION__KEY_PREFIX": "eo",
        "SNAPREPORT_ORDERS__URL": _orders_url(orders),
    }


def _session_locked(client: redis.Redis, user: str) -> bool:
    return bool(client.exists(f"eo:{{{user}}}:l"))


def _claim_key(user: str) -> str:
    return "eo:kv:" + Idempotency.key(user, f"{user}-confirm")


# -- (a) SQLite sessions: the session commit fails ("database is locked") --------------------


async def test_sqlite_session_commit_failing_after_the_order_is_written(tmp_path: Path) -> None:
    orders, sessions = tmp_path / "orders.db", tmp_path / "sessions.db"
    settings = {
        "SNAPREPORT_SESSION__BACKEND": "sqlite",
        "SNAPREPORT_ORDERS__URL": _orders_url(orders),
    }
    user = "wang"
    with server(tmp_path, settings, name="server") as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            await _prepare(client, user)
            with write_locked(orders) as orders_lock:
                confirm = asyncio.create_task(_post(client, _confirm(user), SLOW_TIMEOUT_SECONDS))
                await until(
                    lambda: bool(
                        query(sessions, "SELECT 1 FROM session_locks WHERE user_id = ?", user)
                    ),
                    "the server to hold the session lock",
                )
                with write_locked(sessions):
                    orders_lock.release()  # the order is written; the session commit waits
                    await until(lambda: len(_orders(orders, user)) == 1, "the order")
                    failed = await confirm
            assert failed.status_code in (409, 503), failed.text
            [number] = _orders(orders, user)

            retry = await _post(client, _confirm(user), RETRY_TIMEOUT_SECONDS)
            _assert_answered_with(retry, number)
            assert _orders(orders, user) == [number]
            after = await _post(client, {"user_id": user, "text": "确认"})
            assert after.json()["state"] == "idle"
            assert _orders(orders, user) == [number]


# -- (b) the server is SIGKILLed between the order write and the session commit ---------------


async def test_server_killed_between_order_write_and_session_commit(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    orders = tmp_path / "orders.db"
    settings = _redis_settings(redis_server, orders)
    user = "zhao"
    first = ServerProcess(tmp_path, settings, name="first")
    try:
        first.start()
        async with httpx.AsyncClient(base_url=first.url) as client:
            await _prepare(client, user)
            with write_locked(orders) as orders_lock:
                confirm = asyncio.create_task(_post(client, _confirm(user), SLOW_TIMEOUT_SECONDS))
                await until(lambda: _session_locked(redis_client, user), "the session lock")
                redis_client.client_pause(60_000, all=False)  # writes wait, reads go on
                try:
                    orders_lock.release()  # the order is written; the session commit waits
                    await until(lambda: len(_orders(orders, user)) == 1, "the order")
                    claim_ttl_ms = int(redis_client.pttl(_claim_key(user)))
                    first.kill()
                    killed_at = time.monotonic()
                finally:
                    redis_client.client_unpause()
            with pytest.raises(httpx.TransportError):
                await confirm
    finally:
        first.kill()
    [number] = _orders(orders, user)
    # the dead worker's claim outlives it by at most the lock TTL (it was 85-90 s)
    assert 0 < claim_ttl_ms <= LOCK_TTL_SECONDS * 1000

    with server(tmp_path, settings, name="second") as second:
        async with httpx.AsyncClient(base_url=second.url) as client:
            retry = await _post(client, _confirm(user), RETRY_TIMEOUT_SECONDS)
            answered_after = time.monotonic() - killed_at
            _assert_answered_with(retry, number)
    assert _orders(orders, user) == [number]
    print(f"retry answered {answered_after:.1f} s after the SIGKILL (server restart included)")


# -- (c) Redis killed under load: 8 confirmations in flight, then their retries ---------------


async def test_redis_killed_with_eight_confirmations_in_flight(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    orders = tmp_path / "orders.db"
    users = [f"user{i}" for i in range(8)]
    with server(tmp_path, _redis_settings(redis_server, orders), name="server") as running:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=running.url, limits=limits) as client:
            await asyncio.gather(*(_prepare(client, user) for user in users))
            with write_locked(orders) as orders_lock:
                confirms = [
                    asyncio.create_task(_post(client, _confirm(user), SLOW_TIMEOUT_SECONDS))
                    for user in users
                ]
                await until(
                    lambda: all(_session_locked(redis_client, user) for user in users),
                    "all eight session locks",
                )
                redis_server.kill()
                orders_lock.release()  # the orders are written; every session commit fails
            failed = await asyncio.gather(*confirms)
            assert [f.status_code for f in failed] == [503] * 8, [f.text for f in failed]
            written = dict(_all_orders(orders))
            assert sorted(written) == users

            redis_server.start()  # its append-only file brings sessions and claims back
            retries = await asyncio.gather(
                *(_post(client, _confirm(user), SLOW_TIMEOUT_SECONDS) for user in users)
            )
            for user, retry in zip(users, retries, strict=True):
                _assert_answered_with(retry, written[user])
    assert len(_all_orders(orders)) == 8


# -- (d) Redis killed between the order write and the session commit --------------------------


async def test_redis_killed_between_order_write_and_session_commit(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    orders = tmp_path / "orders.db"
    user = "qian"
    with server(tmp_path, _redis_settings(redis_server, orders), name="server") as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            await _prepare(client, user)
            with write_locked(orders) as orders_lock:
                confirm = asyncio.create_task(_post(client, _confirm(user), SLOW_TIMEOUT_SECONDS))
                await until(lambda: _session_locked(redis_client, user), "the session lock")
                redis_server.kill()
                orders_lock.release()
                await until(lambda: len(_orders(orders, user)) == 1, "the order")
            failed = await confirm
            assert failed.status_code == 503, failed.text
            [number] = _orders(orders, user)

            redis_server.start()
            retry = await _post(client, _confirm(user), SLOW_TIMEOUT_SECONDS)
            _assert_answered_with(retry, number)
            again = await _post(client, _confirm(user))
            assert again.json()["duplicate"] is True
            assert again.json()["order"]["number"] == number
    assert _orders(orders, user) == [number]
