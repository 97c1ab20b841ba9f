"""Expiry timers in one Redis sorted set, claimed by a Lua script."""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from snapreport.errors import StoreUnavailable
from snapreport.redis_link import connect

_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
    redis.call('ZREM', KEYS[1], unpack(due))
end
return due
"""


class RedisExpiryTimers:
    """Timers in one Redis sorted set, ``<prefix>:wecom:expiry``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, owns_client: bool = False) -> None:
        self._redis = client
        self._key = f"{prefix}:wecom:expiry"
        self._owns_client = owns_client
        self._claim = client.register_script(_CLAIM_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisExpiryTimers:
        client = connect(url)
        return cls(client, prefix=prefix, owns_client=True)

    async def _call(self, action: str, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"redis expiry timers: {action} failed: {exc or type(exc).__name__}"
            ) from exc

    async def schedule(self, user_id: str, due: float) -> None:
        await self._call("schedule", self._redis.zadd(self._key, {user_id: due}))

    async def cancel(self, user_id: str) -> None:
        await self._call("cancel", self._redis.zrem(self._key, user_id))

    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed = await self._call("claim", self._claim(keys=[self._key], args=[repr(now), limit]))
        return [item.decode() if isinstance(item, bytes) else str(item) for item in claimed]

    async def aclose(self) -> None:
        if self._owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
