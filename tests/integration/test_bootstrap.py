"""The composition root builds every adapter, WeCom's included, and shares one Redis pool."""

from __future__ import annotations

from pathlib import Path

from snapreport.bootstrap import build
from snapreport.channels.wecom.channel import WeComChannel
from snapreport.kv.redis import RedisKeyValueStore
from snapreport.session.stores.redis import RedisSessionStore
from snapreport.timers.redis import RedisExpiryTimers
from tests.harness.fake_wecom import FakeWeCom, wecom_settings

FAR = 4_000_000_000.0  # a due time the channel's own poller never reaches


async def test_one_redis_pool_serves_sessions_kv_and_timers(
    tmp_path: Path, redis_url: str, redis_prefix: str, fake_wecom: FakeWeCom
) -> None:
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        session={"backend": "redis", "url": redis_url, "key_prefix": redis_prefix},
    )
    async with build(settings, channels=True) as app:
        store, kv, channel = app.engine.store, app.kv, app.wecom
        assert isinstance(store, RedisSessionStore)
        assert isinstance(kv, RedisKeyValueStore)
        assert isinstance(channel, WeComChannel)
        timers = channel._timers
        assert isinstance(timers, RedisExpiryTimers)
        pools = {id(x._redis.connection_pool) for x in (store, kv, timers)}
        assert len(pools) == 1
        # and each works on it
        async with app.engine.turn("alice") as session:
            session.history.add_user("hello")
        assert await app.engine.peek("alice") is not None
        await kv.set("k", b"v", ttl_seconds=60)
        assert await kv.get("k") == b"v"
        await timers.schedule("alice", FAR)
        assert await timers.claim_due(FAR + 1, 10) == ["alice"]


async def test_without_wecom_settings_no_channel_starts(tmp_path: Path) -> None:
    settings = wecom_settings(tmp_path, "http://127.0.0.1:9", wecom={})
    async with build(settings, channels=True) as app:
        assert app.wecom is None
