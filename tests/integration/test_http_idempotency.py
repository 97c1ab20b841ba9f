"""The deduplication of messages and the rate limiter, on their own."""

from __future__ import annotations

import asyncio
import json

import pytest

from snapreport.channels.http.idempotency import Idempotency, RateLimiter
from snapreport.errors import RateLimited, StoreUnavailable
from snapreport.kv.memory import MemoryKeyValueStore
from tests.harness.clock import FakeClock


class Turns:
    """A turn that counts its runs and can be made to fail or to wait for a signal."""

    def __init__(self) -> None:
        self.runs = 0
        self.fail = False
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bytes:
        self.runs += 1
        await self.release.wait()
        if self.fail:
            raise StoreUnavailable("the store went away")
        return f'{{"replies":[{{"type":"text","text":"answer {self.runs}"}}]}}'.encode()


@pytest.fixture
def idem() -> Idempotency:
    return Idempotency(MemoryKeyValueStore(), claim_ttl_seconds=30)


async def test_a_repeat_gets_the_first_answer(idem: Idempotency) -> None:
    turn = Turns()
    first = await idem.run("u", "m", turn)
    again = await idem.run("u", "m", turn)
    assert first == (again[0], False)
    assert again[1] is True
    assert turn.runs == 1


async def test_a_concurrent_repeat_waits_for_the_first(idem: Idempotency) -> None:
    turn = Turns()
    turn.release.clear()
    first = asyncio.create_task(idem.run("u", "m", turn))
    second = asyncio.create_task(idem.run("u", "m", turn))
    await asyncio.sleep(0.05)
    assert not second.done()
    turn.release.set()
    results = await asyncio.gather(first, second)
    assert turn.runs == 1
    assert sorted(dup for _, dup in results) == [False, True]
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


async def test_a_waiter_takes_over_when_the_first_fails(idem: Idempotency) -> None:
    failing, working = Turns(), Turns()
    failing.fail = True
    failing.release.clear()
    first = asyncio.create_task(idem.run("u", "m", failing))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(idem.run("u", "m", working))
    await asyncio.sleep(0.05)
    assert working.runs == 0  # waiting for the first one's answer
    failing.release.set()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
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


async def test_a_claim_whose_holder_died_is_taken_over() -> None:
    idem = Idempotency(MemoryKeyValueStore(), claim_ttl_seconds=0.2)
    stuck, working = Turns(), Turns()
    stuck.release.clear()  # a worker that died mid-turn never answers nor gives up its claim
    first = asyncio.create_task(idem.run("u", "m", stuck))
    await asyncio.sleep(0.01)
    answer, duplicate = await idem.run("u", "m", working)
    assert duplicate is False
    assert working.runs == 1
    first.cancel()  # the late holder gives up: it must not take the new answer with it
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await idem.run("u", "m", working) == (answer, True)


async def test_the_rate_limit_counts_per_user_and_minute(clock: FakeClock) -> None:
    clock.now = (1_700_000_000 // 60) * 60 + 15.0
    limiter = RateLimiter(MemoryKeyValueStore(clock=clock), per_minute=2, clock=clock)
    await limiter.hit("a")
    await limiter.hit("a")
    await limiter.hit("b")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("a")
    assert refused.value.retry_after == pytest.approx(45)
    clock.advance(45)
    await limiter.hit("a")
