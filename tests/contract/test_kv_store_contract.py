"""One contract for every ``KeyValueStore``: memory, SQLite and Redis behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from snapreport.channels.http.idempotency import Idempotency, RateLimiter
from snapreport.errors import RateLimited, StoreUnavailable
from snapreport.kv.base import KeyValueStore
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.kv.redis import RedisKeyValueStore
from snapreport.kv.sqlite import SqliteKeyValueStore
from tests.harness.clock import FakeClock
from tests.harness.redis_server import RedisServer


class Backend:
    """Builds a store and moves its time (Redis keeps its own clock: it really waits)."""

    def __init__(self, name: str, store: KeyValueStore, clock: FakeClock) -> None:
        self.name = name
        self.store = store
        self.clock = clock

    async def pass_time(self, seconds: float) -> None:
        if self.name == "redis":
            await asyncio.sleep(seconds)
        else:
            self.clock.advance(seconds)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Backend]:
    store: KeyValueStore
    if request.param == "memory":
        store = MemoryKeyValueStore(clock=clock)
    elif request.param == "sqlite":
        store = SqliteKeyValueStore(tmp_path / "kv.db", clock=clock)
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisKeyValueStore.from_url(url, prefix=request.getfixturevalue("redis_prefix"))
    try:
        yield Backend(request.param, store, clock)
    finally:
        await store.aclose()


async def test_set_get_delete(backend: Backend) -> None:
    kv = backend.store
    assert await kv.get("a") is None
    await kv.set("a", b"\x00one", ttl_seconds=60)
    assert await kv.get("a") == b"\x00one"
    await kv.set("a", b"two", ttl_seconds=60)
    assert await kv.get("a") == b"two"
    await kv.delete("a")
    assert await kv.get("a") is None
    await kv.delete("a")


async def test_values_expire(backend: Backend) -> None:
    kv = backend.store
    await kv.set("short", b"x", ttl_seconds=0.2)
    await kv.set("long", b"y", ttl_seconds=60)
    await backend.pass_time(0.3)
    assert await kv.get("short") is None
    assert await kv.get("long") == b"y"


async def test_set_if_absent_claims_once(backend: Backend) -> None:
    kv = backend.store
    results = await asyncio.gather(
        *(kv.set_if_absent("claim", str(i).encode(), ttl_seconds=60) for i in range(10))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await kv.get("claim") == str(winner).encode()


async def test_set_if_absent_takes_an_expired_key(backend: Backend) -> None:
    kv = backend.store
    assert await kv.set_if_absent("k", b"first", ttl_seconds=0.2)
    assert not await kv.set_if_absent("k", b"second", ttl_seconds=60)
    await backend.pass_time(0.3)
    assert await kv.set_if_absent("k", b"third", ttl_seconds=60)
    assert await kv.get("k") == b"third"


async def test_incr_counts_and_keeps_its_first_ttl(backend: Backend) -> None:
    kv = backend.store
    counts = await asyncio.gather(*(kv.incr("n", ttl_seconds=2.0) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    assert await kv.get("n") == b"20"
    await backend.pass_time(0.2)
    assert await kv.incr("n", ttl_seconds=60) == 21  # does not extend the window
    await backend.pass_time(2.0)
    assert await kv.incr("n", ttl_seconds=60) == 1


async def test_keys_are_independent(backend: Backend) -> None:
    kv = backend.store
    await kv.set("x", b"1", ttl_seconds=60)
    assert await kv.incr("y", ttl_seconds=60) == 1
    assert await kv.get("x") == b"1"


async def test_replace_if_swaps_only_the_expected_live_value(backend: Backend) -> None:
    kv = backend.store
    assert not await kv.replace_if("c", b"mine", b"mine", ttl_seconds=60)  # absent
    await kv.set("c", b"mine", ttl_seconds=0.5)
    assert not await kv.replace_if("c", b"theirs", b"new", ttl_seconds=60)
    assert await kv.get("c") == b"mine"
    assert await kv.replace_if("c", b"mine", b"mine", ttl_seconds=60)  # renewed
    await backend.pass_time(0.7)
    assert await kv.get("c") == b"mine"
    await kv.set("d", b"old", ttl_seconds=0.2)
    await backend.pass_time(0.3)
    assert not await kv.replace_if("d", b"old", b"new", ttl_seconds=60)  # expired
    assert await kv.get("d") is None


async def test_idempotency_keys_of_different_users_never_collide(backend: Backend) -> None:
    idem = Idempotency(backend.store, claim_ttl_seconds=30, wait_seconds=30)
    runs: list[str] = []

    def turn(name: str) -> Callable[[], Awaitable[bytes]]:
        async def run() -> bytes:
            runs.append(name)
            return f'{{"for":"{name}"}}'.encode()

        return run

    first = await idem.run("li:si", "42", turn("li:si"))
    second = await idem.run("li", "si:42", turn("li"))
    assert first == (b'{"for":"li:si"}', False)
    assert second == (b'{"for":"li"}', False)
    assert runs == ["li:si", "li"]


async def test_rate_limits_of_different_users_never_collide(backend: Backend) -> None:
    backend.clock.now = 60.0 * 1000 + 1
    limiter = RateLimiter(backend.store, per_minute=1, clock=backend.clock)
    await limiter.hit("a:1000")
    await limiter.hit("a")  # its own window: not counted with "a:1000"'s
    with pytest.raises(RateLimited):
        await limiter.hit("a")


async def test_redis_errors_become_store_unavailable(redis_server: RedisServer) -> None:
    kv = RedisKeyValueStore.from_url(redis_server.url, prefix="gone")
    try:
        await kv.set("a", b"1", ttl_seconds=60)
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            await kv.get("a")
        with pytest.raises(StoreUnavailable):
            await kv.incr("n", ttl_seconds=60)
    finally:
        await kv.aclose()


async def test_sqlite_errors_become_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    kv = SqliteKeyValueStore(blocker / "kv.db")
    with pytest.raises(StoreUnavailable):
        await kv.get("a")
    await kv.aclose()


async def test_sqlite_is_shared_between_stores_on_one_file(tmp_path: Path) -> None:
    one = SqliteKeyValueStore(tmp_path / "kv.db")
    two = SqliteKeyValueStore(tmp_path / "kv.db")
    try:
        assert await one.set_if_absent("k", b"1", ttl_seconds=60)
        assert not await two.set_if_absent("k", b"2", ttl_seconds=60)
        assert await two.incr("n", ttl_seconds=60) == 1
        assert await one.incr("n", ttl_seconds=60) == 2
    finally:
        await one.aclose()
        await two.aclose()
