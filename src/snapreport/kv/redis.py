"""``RedisKeyValueStore``: keys in Redis, shared by every worker and machine; native TTLs.

Keys are ``<prefix>:kv:<key>``. ``set_if_absent`` is one ``SET NX PX``; ``incr`` is a script
that gives a counter its TTL when it creates it, so the TTL is set exactly once even if two
workers race on it (Redis 6.2 has no ``PEXPIRE NX``); ``replace_if`` is a compare-and-set
script. Every call is one round trip, sent like the session store's scripts (``redis_link``:
redis-py's connections and parser, without the client's per-command machinery). Driver errors
become ``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from snapreport.errors import StoreUnavailable
from snapreport.redis_link import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_SOCKET_TIMEOUT_SECONDS,
    Arg,
    connect,
    link_or_client,
    run_script,
    script,
)

# KEYS counter | ARGV ttl_ms
_INCR = script(
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
    "return n"
)


# KEYS key | ARGV expected, value, ttl_ms
_REPLACE_IF = script(
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
    "return 1"
)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisKeyValueStore:
    """A ``KeyValueStore`` on Redis."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "snapreport", owns_client: bool = False
    ) -> None:
        self._redis = client
        self._prefix = f"{prefix}:kv:"
        self._owns_client = owns_client
        self._link, self._send = link_or_client(client)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "snapreport",
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ) -> RedisKeyValueStore:
        """A store on its own connection pool, which ``aclose`` closes."""
        client = connect(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        return cls(client, prefix=prefix, owns_client=True)

    def __repr__(self) -> str:
        return f"RedisKeyValueStore(prefix={self._prefix!r})"

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, action: str, *args: Arg) -> Any:
        try:
            return await self._send(*args)
        except (RedisError, OSError) as exc:
            raise _unavailable(action, exc) from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", "GET", self._key(key))
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        await self._call("set", "SET", self._key(key), value, "PX", _ms(ttl_seconds))

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        px = _ms(ttl_seconds)
        stored = await self._call("set_if_absent", "SET", self._key(key), value, "PX", px, "NX")
        return stored is not None

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        args = (expected, value, _ms(ttl_seconds))
        try:
            stored = await run_script(self._send, _REPLACE_IF, (self._key(key),), args)
        except (RedisError, OSError) as exc:
            raise _unavailable("replace_if", exc) from exc
        return int(stored) == 1

    async def delete(self, key: str) -> None:
        await self._call("delete", "DEL", self._key(key))

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        try:
            count = await run_script(self._send, _INCR, (self._key(key),), (_ms(ttl_seconds),))
        except (RedisError, OSError) as exc:
            raise _unavailable("incr", exc) from exc
        return int(count)

    async def ping(self) -> None:
        await self._call("ping", "PING")

    async def aclose(self) -> None:
        if self._link is not None:
            await self._link.aclose()
        if self._owns_client:
            # closing a pool whose server went away must not fail shutdown
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()


def _unavailable(action: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"redis key-value store: {action} failed: {exc or type(exc).__name__}")
