"""``RedisKeyValueStore``: keys in Redis, shared by every worker and machine; native TTLs.

Keys are ``<prefix>:kv:<key>``. ``set_if_absent`` is one ``SET NX PX``; ``incr`` is ``INCR``
and ``PEXPIRE NX`` in one MULTI/EXEC transaction, so a counter always gets its TTL exactly once
(when it is created) even if two workers race on it. Driver errors become ``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from snapreport.errors import StoreUnavailable

DEFAULT_SOCKET_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 1.0


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
        client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            # no silent retries: INCR sent twice would count twice
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, owns_client=True)

    def __repr__(self) -> str:
        return f"RedisKeyValueStore(prefix={self._prefix!r})"

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, action: str, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"redis key-value store: {action} failed: {exc or type(exc).__name__}"
            ) from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", self._redis.get(self._key(key)))
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        await self._call("set", self._redis.set(self._key(key), value, px=_ms(ttl_seconds)))

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        stored = await self._call(
            "set_if_absent",
            self._redis.set(self._key(key), value, px=_ms(ttl_seconds), nx=True),
        )
        return bool(stored)

    async def delete(self, key: str) -> None:
        await self._call("delete", self._redis.delete(self._key(key)))

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        name = self._key(key)

        async def run() -> int:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.pexpire(name, _ms(ttl_seconds), nx=True)
                value, _ = await pipe.execute()
            return int(value)

        result: int = await self._call("incr", run())
        return result

    async def ping(self) -> None:
        await self._call("ping", self._redis.ping())

    async def aclose(self) -> None:
        if self._owns_client:
            # closing a pool whose server went away must not fail shutdown
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
