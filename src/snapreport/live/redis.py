"""``RedisLiveFeed``: Redis pub/sub, so a change made by any process reaches every process.

Each process holds ONE subscription (a dedicated connection) and hands what arrives to its
``Hub``; publishing is one ``PUBLISH``. Pub/sub keeps nothing: while a process is cut off from
Redis it misses the changes made meanwhile (the listener reconnects with backoff and says so in
the log), which is the feed's at-most-once promise.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from snapreport.errors import StoreUnavailable
from snapreport.live.base import Hub, LiveEvent, reconnect
from snapreport.logs import get_logger

log = get_logger("snapreport.live")

POLL_SECONDS: Final = 1.0


class RedisLiveFeed:
    """Changes on the Redis channel ``<prefix>:live:orders``. ``await start()`` subscribes
    before it returns (when Redis answers; else its listener keeps trying), so a stream opened
    afterwards sees every later change."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, *, prefix: str) -> None:
        self.hub = hub
        self._redis = redis
        self.channel = f"{prefix}:live:orders"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub: aioredis.client.PubSub | None
        try:
            pubsub = await self._subscribe()
        except (RedisError, OSError) as exc:  # keep starting: the listener retries
            log.warning("live_feed_disconnected", error=type(exc).__name__)
            pubsub = None
        self._task = asyncio.create_task(self._listen(pubsub), name="live-feed")

    async def publish(self, event: LiveEvent) -> None:
        try:
            await self._redis.publish(self.channel, event.encode())
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"live feed: Redis is unavailable ({type(exc).__name__})"
            ) from exc

    async def aclose(self) -> None:
        self.hub.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe(self) -> aioredis.client.PubSub:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def _listen(self, pubsub: aioredis.client.PubSub | None) -> None:
        if pubsub is None:
            pubsub = await self._resubscribe()
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                except (RedisError, OSError) as exc:
                    log.warning("live_feed_disconnected", error=type(exc).__name__)
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    pubsub = await self._resubscribe()
                    continue
                if message is not None and message.get("type") == "message":
                    self.hub.deliver_encoded(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resubscribe(self) -> aioredis.client.PubSub:
        return await reconnect(self._subscribe, (RedisError, OSError))
