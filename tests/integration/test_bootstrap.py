"""The composition root builds every adapter, WeCom's included, and shares one Redis pool."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import redis

from snapreport.bootstrap import build, sqlite_session_path
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


LOCK_TTL = 3.0  # SNAPREPORT_SESSION__LOCK_TTL_SECONDS in the test below (the stores' own is 60)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_the_configured_lock_ttl_reaches_the_session_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    session: dict[str, object] = {"backend": backend, "lock_ttl_seconds": LOCK_TTL}
    if backend == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        session |= {"url": request.getfixturevalue("redis_url"), "key_prefix": prefix}
    settings = wecom_settings(tmp_path, "http://127.0.0.1:9", wecom={}, session=session)
    async with build(settings) as app, app.engine.turn("alice"):
        if backend == "redis":
            with redis.Redis.from_url(str(settings.session.url)) as client:
                left = int(client.pttl(f"{prefix}:{{alice}}:l")) / 1000
        else:
            with closing(sqlite3.connect(sqlite_session_path(settings))) as db:
                [(until,)] = db.execute(
                    "SELECT lease_until FROM session_locks WHERE user_id = 'alice'"
                ).fetchall()
            left = until - time.time()
    # the lock a crashed worker leaves behind lives the configured TTL, not the store's default
    assert 0 < left <= LOCK_TTL
