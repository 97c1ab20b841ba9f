"""``ScriptLink``: the session store's script calls on redis-py's connections, against a real
redis-server: replies, error replies, the pool's settings, a server restart, a cancelled call,
a timeout and the connection cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from snapreport.redis_link import ScriptLink
from tests.harness.redis_server import RedisServer

BOUND = 10.0  # seconds: a generous bound on what the server does in milliseconds


async def until_clients(url: str, condition: Callable[[list[dict[str, str]]], bool]) -> None:
    """Poll the server's CLIENT LIST (seen from a connection of its own, left out of the list)
    until ``condition`` holds for it."""
    watcher = aioredis.Redis.from_url(url)
    try:
        own = await watcher.client_id()
        async with asyncio.timeout(BOUND):
            while True:
                clients = [c for c in await watcher.client_list() if int(c["id"]) != own]
                if condition(clients):
                    return
                await asyncio.sleep(0.01)
    finally:
        await watcher.aclose()


def blocked(clients: list[dict[str, str]]) -> int:
    """How many of ``clients`` wait in a BLPOP."""
    return sum(1 for c in clients if c.get("cmd") == "blpop" and "b" in c.get("flags", ""))


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool.from_url(redis_url, socket_timeout=5.0, max_connections=4)
    yield pool
    await pool.aclose()


async def test_a_reply_comes_back_as_redis_py_parses_it(
    pool: ConnectionPool, redis_prefix: str
) -> None:
    link = ScriptLink(pool)
    key = f"{redis_prefix}:k"
    assert await link.call("SET", key, b"v", "PX", 60_000) == b"OK"
    assert await link.call("EVAL", "return {KEYS[1], 7}", b"1", key) == [key.encode(), 7]
    assert await link.call("GET", key) == b"v"
    await link.aclose()


async def test_an_error_reply_raises_and_leaves_the_connection_in_use(
    pool: ConnectionPool, redis_prefix: str
) -> None:
    link = ScriptLink(pool)
    with pytest.raises(NoScriptError):
        await link.call("EVALSHA", b"0" * 40, b"0")
    with pytest.raises(ResponseError, match="wrong number"):
        await link.call("GET")
    assert await link.call("PING") == b"PONG"
    assert link._made == 1  # one connection did it all
    await link.aclose()


async def test_connections_are_made_from_the_pools_own_settings(redis_url: str) -> None:
    pool = ConnectionPool.from_url(redis_url.rsplit("/", 1)[0] + "/5", client_name="linked")
    link = ScriptLink(pool)
    info = await link.call("CLIENT", "INFO")
    assert b" db=5 " in info
    assert b" name=linked " in info
    await link.aclose()
    await pool.aclose()


async def test_a_restarted_server_is_reconnected_to_without_an_error(
    redis_server: RedisServer,
) -> None:
    pool = ConnectionPool.from_url(redis_server.url, socket_timeout=5.0)
    link = ScriptLink(pool)
    assert await link.call("PING") == b"PONG"
    redis_server.stop()
    with pytest.raises(RedisConnectionError):
        await link.call("PING")
    redis_server.start()
    assert await link.call("PING") == b"PONG"
    # a connection closed by the server while it sat unused is noticed before it is used
    await link.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
    await until_clients(redis_server.url, lambda clients: not clients)
    assert await link.call("PING") == b"PONG"
    await link.aclose()
    await pool.aclose()


async def test_a_cancelled_call_leaves_no_stray_reply_for_the_next(
    pool: ConnectionPool, redis_prefix: str, redis_url: str
) -> None:
    link = ScriptLink(pool)
    key = f"{redis_prefix}:slow"
    slow = asyncio.create_task(link.call("BLPOP", key, "1"))
    await until_clients(redis_url, lambda clients: blocked(clients) == 1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # the BLPOP's reply (nil, a second later) must not be read as this call's reply
    await link.call("RPUSH", key, b"x")
    assert await link.call("LPOP", key) == b"x"
    await until_clients(redis_url, lambda clients: blocked(clients) == 0)  # the nil is sent
    assert await link.call("ECHO", b"mine") == b"mine"
    await link.aclose()


async def test_a_reply_that_does_not_come_in_time_is_a_redis_timeout(
    redis_url: str, redis_prefix: str
) -> None:
    pool = ConnectionPool.from_url(redis_url, socket_timeout=0.2)
    link = ScriptLink(pool)
    with pytest.raises(RedisTimeoutError, match=r"within 0\.2s"):
        await link.call("BLPOP", f"{redis_prefix}:never", "1")
    assert await link.call("ECHO", b"after") == b"after"
    await link.aclose()
    await pool.aclose()


async def test_no_more_connections_than_the_pool_allows(
    pool: ConnectionPool, redis_prefix: str, redis_url: str
) -> None:
    link = ScriptLink(pool)
    waits = [asyncio.create_task(link.call("BLPOP", f"{redis_prefix}:w{i}", "2")) for i in range(4)]
    await until_clients(redis_url, lambda clients: blocked(clients) == 4)
    with pytest.raises(RedisConnectionError, match="Too many connections"):
        await link.call("PING")
    assert await asyncio.gather(*waits) == [None] * 4
    assert await link.call("PING") == b"PONG"  # a connection is free again
    assert link._made == 4
    await link.aclose()


def test_only_a_plain_pool_is_linked(redis_url: str) -> None:
    assert ScriptLink.supports(ConnectionPool.from_url(redis_url))
    assert not ScriptLink.supports(aioredis.BlockingConnectionPool.from_url(redis_url))
    assert not ScriptLink.supports(None)


async def test_stores_on_a_pool_the_link_does_not_take_use_the_client(
    redis_url: str, redis_prefix: str
) -> None:
    from snapreport.kv.redis import RedisKeyValueStore
    from snapreport.session.engine import SessionEngine
    from snapreport.session.stores.redis import RedisSessionStore

    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(redis_url))
    sessions = RedisSessionStore(client, prefix=redis_prefix)
    kv = RedisKeyValueStore(client, prefix=redis_prefix)
    try:
        assert sessions._link is None
        assert kv._link is None
        engine = SessionEngine(sessions)
        for text in ("one", "two"):
            async with engine.turn("alice") as session:
                session.history.add_user(text)
        info = await engine.peek("alice")
        assert info is not None
        assert [message.text for message in info.session.history] == ["one", "two"]
        assert [await kv.incr("n", ttl_seconds=60) for _ in range(3)] == [1, 2, 3]
        assert await kv.set_if_absent("k", b"v", ttl_seconds=60) is True
        assert await kv.set_if_absent("k", b"w", ttl_seconds=60) is False
        assert await kv.get("k") == b"v"
    finally:
        await sessions.aclose()
        await client.aclose()
