"""The deduplication of messages and the rate limiter, on their own, on every key-value backend
(memory, SQLite, Redis on the harness's real redis-server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from snapreport.channels.http.idempotency import Idempotency, RateLimiter
from snapreport.errors import RateLimited, StoreUnavailable
from snapreport.kv.base import KeyValueStore
from snapreport.kv.memory import MemoryKeyValueStore
from snapreport.kv.redis import RedisKeyValueStore
from snapreport.kv.sqlite import SqliteKeyValueStore
from tests.harness.clock import FakeClock

BOUND = 10.0  # seconds: a generous bound for something that takes milliseconds


class Turns:
    """A turn that counts its runs and can be made to fail or to wait for a signal."""

    def __init__(self) -> None:
        self.runs = 0
        self.fail = False
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bytes:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise StoreUnavailable("the store went away")
        return f'{{"replies":[{{"type":"text","text":"answer {self.runs}"}}]}}'.encode()


class Watched:
    """A key-value store that tells the test each time someone read a key (a waiter polling)."""

    def __init__(self, inner: KeyValueStore) -> None:
        self.inner = inner
        self.reads = 0
        self._read = asyncio.Event()

    async def get(self, key: str) -> bytes | None:
        value = await self.inner.get(key)
        self.reads += 1
        self._read.set()
        return value

    async def read_more_than(self, reads: int) -> None:
        """Wait until the store was read more than ``reads`` times (bounded)."""
        async with asyncio.timeout(BOUND):
            while self.reads <= reads:
                self._read.clear()
                await self._read.wait()

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        await self.inner.set(key, value, ttl_seconds=ttl_seconds)

    async def set_if_absent(self, key: str, value: bytes, *, ttl_seconds: float) -> bool:
        return await self.inner.set_if_absent(key, value, ttl_seconds=ttl_seconds)

    async def replace_if(
        self, key: str, expected: bytes, value: bytes, *, ttl_seconds: float
    ) -> bool:
        return await self.inner.replace_if(key, expected, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        return await self.inner.incr(key, ttl_seconds=ttl_seconds)

    async def aclose(self) -> None:
        await self.inner.aclose()


KvFactory = Callable[..., Watched]


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KvFactory]:
    """Builds stores of the parametrised backend, on the real clock unless given a fake one
    (Redis always keeps its own time)."""
    made: list[KeyValueStore] = []

    def make(clock: Callable[[], float] = time.time) -> Watched:
        store: KeyValueStore
        if request.param == "memory":
            store = MemoryKeyValueStore(clock=clock)
        elif request.param == "sqlite":
            store = SqliteKeyValueStore(tmp_path / f"kv{len(made)}.db", clock=clock)
        else:
            url = request.getfixturevalue("redis_url")
            store = RedisKeyValueStore.from_url(url, prefix=request.getfixturevalue("redis_prefix"))
        made.append(store)
        return Watched(store)

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
def kv(make_kv: KvFactory) -> Watched:
    return make_kv()


@pytest.fixture
def idem(kv: Watched) -> Idempotency:
    return Idempotency(kv, claim_ttl_seconds=30, wait_seconds=30)


async def test_a_repeat_gets_the_first_answer(idem: Idempotency) -> None:
    turn = Turns()
    first = await idem.run("u", "m", turn)
    again = await idem.run("u", "m", turn)
    assert first == (again[0], False)
    assert again[1] is True
    assert turn.runs == 1


async def test_different_messages_and_users_are_not_duplicates(idem: Idempotency) -> None:
    turn = Turns()
    results = [await idem.run(u, m, turn) for u, m in (("u", "m"), ("u", "n"), ("v", "m"))]
    assert [dup for _, dup in results] == [False, False, False]
    assert turn.runs == 3


async def test_a_concurrent_repeat_waits_for_the_first(idem: Idempotency, kv: Watched) -> None:
    turn = Turns()
    turn.release.clear()
    first = asyncio.create_task(idem.run("u", "m", turn))
    await asyncio.wait_for(turn.started.wait(), BOUND)
    reads = kv.reads
    second = asyncio.create_task(idem.run("u", "m", turn))
    await kv.read_more_than(reads + 1)  # it found the claim and polled it again: it waits
    assert not second.done()
    assert turn.runs == 1
    turn.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, second), BOUND)
    assert turn.runs == 1
    assert [dup for _, dup in results] == [False, True]
    assert results[0][0] == results[1][0]


async def test_a_failed_turn_is_forgotten_and_its_retry_runs(idem: Idempotency) -> None:
    turn = Turns()
    turn.fail = True
    with pytest.raises(StoreUnavailable):
        await idem.run("u", "m", turn)
    turn.fail = False
    answer, duplicate = await idem.run("u", "m", turn)
    assert duplicate is False
    assert json.loads(answer)["replies"][0]["text"] == "answer 2"


async def test_a_waiter_takes_over_when_the_first_fails(idem: Idempotency, kv: Watched) -> None:
    failing, working = Turns(), Turns()
    failing.fail = True
    failing.release.clear()
    first = asyncio.create_task(idem.run("u", "m", failing))
    await asyncio.wait_for(failing.started.wait(), BOUND)
    reads = kv.reads
    second = asyncio.create_task(idem.run("u", "m", working))
    await kv.read_more_than(reads)  # it found the first one's claim
    assert working.runs == 0  # waiting for the first one's answer
    failing.release.set()
    outcomes = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), BOUND)
    assert isinstance(outcomes[0], StoreUnavailable)
    assert outcomes[1] == (b'{"replies":[{"type":"text","text":"answer 1"}]}', False)
    assert working.runs == 1


async def test_a_refused_admission_leaves_no_claim(idem: Idempotency) -> None:
    turn = Turns()

    async def refuse() -> None:
        raise RateLimited("slow down", retry_after=3)

    with pytest.raises(RateLimited):
        await idem.run("u", "m", turn, admit=refuse)
    assert turn.runs == 0
    assert (await idem.run("u", "m", turn))[1] is False
    assert turn.runs == 1


async def test_a_claim_whose_holder_died_is_taken_over(kv: Watched) -> None:
    idem = Idempotency(kv, claim_ttl_seconds=0.2, wait_seconds=BOUND)
    # a worker that died mid-turn left its claim behind, and renews it no more
    await kv.set(Idempotency.key("u", "m"), b"pending:dead", ttl_seconds=0.2)
    working = Turns()
    answer, duplicate = await asyncio.wait_for(idem.run("u", "m", working), BOUND)
    assert duplicate is False
    assert working.runs == 1
    assert await idem.run("u", "m", working) == (answer, True)


async def test_a_live_holder_keeps_its_claim_past_the_claim_ttl(kv: Watched) -> None:
    claim_ttl = 1.0
    idem = Idempotency(kv, claim_ttl_seconds=claim_ttl, wait_seconds=30)
    slow, other = Turns(), Turns()
    slow.release.clear()
    first = asyncio.create_task(idem.run("u", "m", slow))
    await asyncio.wait_for(slow.started.wait(), BOUND)
    claim = await kv.get(Idempotency.key("u", "m"))
    assert claim is not None
    reads = kv.reads
    second = asyncio.create_task(idem.run("u", "m", other))
    await kv.read_more_than(reads)  # it found the claim: it waits
    # let three claim TTLs pass (elapsed time is the point here, not the order of events):
    # the holder's renewals keep its claim, so the waiter never takes over
    for _ in range(6):
        await asyncio.sleep(claim_ttl / 2)
        assert await kv.get(Idempotency.key("u", "m")) == claim
    assert other.runs == 0
    slow.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, second), BOUND)
    assert [dup for _, dup in results] == [False, True]
    assert other.runs == 0


async def test_the_rate_limit_counts_per_user_and_minute(
    make_kv: KvFactory, clock: FakeClock
) -> None:
    clock.now = (1_700_000_000 // 60) * 60 + 15.0
    limiter = RateLimiter(make_kv(clock), per_minute=2, clock=clock)
    await limiter.hit("a")
    await limiter.hit("a")
    await limiter.hit("b")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("a")
    assert refused.value.retry_after == pytest.approx(45)
    clock.advance(45)
    await limiter.hit("a")
