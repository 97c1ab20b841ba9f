"""Per-member send pacing: never more than the limit in any sliding minute, nothing dropped."""

from __future__ import annotations

import bisect

import pytest

from snapreport.channels.wecom.pacing import SendPacer
from snapreport.kv.memory import MemoryKeyValueStore
from tests.harness.clock import FakeClock


def make_pacer(clock: FakeClock, limit: int = 28, max_wait: float = 120.0) -> SendPacer:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return SendPacer(
        MemoryKeyValueStore(clock=clock),
        prefix="pace",
        limit=limit,
        max_wait_seconds=max_wait,
        clock=clock,
        sleep=sleep,
    )


def busiest_minute(times: list[float]) -> int:
    return max(bisect.bisect_left(times, t + 60.0) - i for i, t in enumerate(times))


async def test_a_burst_is_spread_so_no_minute_holds_more_than_the_limit(
    clock: FakeClock,
) -> None:
    pacer = make_pacer(clock)
    clock.advance(45.0)  # start late in a minute, so the burst crosses a boundary
    times = []
    for _ in range(100):
        await pacer.acquire("zhangsan")
        times.append(clock.now)
    assert len(times) == 100  # every message went out: delayed, not dropped
    assert busiest_minute(times) <= 30  # WeCom's rule
    assert times[27] == times[0]  # the first 28 go at once
    assert times[-1] - times[0] < 5 * 60  # and the rest at about the allowed rate


async def test_members_are_paced_separately(clock: FakeClock) -> None:
    pacer = make_pacer(clock, limit=3)
    for _ in range(3):
        await pacer.acquire("zhangsan")
    start = clock.now
    await pacer.acquire("lisi")
    assert clock.now == start
    await pacer.acquire("zhangsan")
    assert clock.now > start


@pytest.mark.parametrize("limit", [1, 5])
async def test_delay_needed_reports_the_wait(clock: FakeClock, limit: int) -> None:
    pacer = make_pacer(clock, limit=limit)
    assert await pacer.delay_needed("u") == 0.0
    for _ in range(limit):
        await pacer.acquire("u")
    assert await pacer.delay_needed("u") > 0.0


async def test_the_wait_is_bounded(clock: FakeClock) -> None:
    pacer = make_pacer(clock, limit=1, max_wait=5.0)
    await pacer.acquire("u")
    start = clock.now
    await pacer.acquire("u")  # would need most of a minute; gives up waiting after 5 s
    assert clock.now - start == pytest.approx(5.0)
