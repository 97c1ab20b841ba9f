"""Group commit (``outbox.batching.Batcher``): concurrent items share flushes, each gets its own
outcome, a failed flush fails its items only, and a caller that stops waiting harms nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from snapreport.outbox.batching import Batcher


class Recorder:
    """A flush that records its calls and can be held open."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.calls.append(list(items))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_items_submitted_while_a_flush_runs_share_the_next_one() -> None:
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush)
    flush.gate.clear()
    first = asyncio.create_task(batcher.submit(0))
    while not flush.calls:  # the first flush is under way, held open
        await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(i)) for i in (2, 4, 6)]
    await asyncio.sleep(0)
    flush.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [20, 40, 60]
    assert flush.calls == [[0], [2, 4, 6]]


async def test_each_item_gets_its_own_outcome() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder())
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0
    assert results[2] == 20
    assert isinstance(results[1], ValueError)
    assert str(results[3]) == "odd 3"


async def test_a_failed_flush_fails_its_items_and_the_next_flush_runs() -> None:
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush)
    flush.fail_with = ConnectionError("database away")
    results = await asyncio.gather(*(batcher.submit(i) for i in (0, 2)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    flush.fail_with = None
    assert await batcher.submit(4) == 40


async def test_batches_are_bounded() -> None:
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush, max_items=3)
    await asyncio.gather(*(batcher.submit(i * 2) for i in range(7)))
    assert [len(c) for c in flush.calls] == [3, 3, 1]
    assert [i for c in flush.calls for i in c] == [i * 2 for i in range(7)]  # in order


async def test_a_caller_that_stops_waiting_leaves_the_others_their_outcomes() -> None:
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush)
    flush.gate.clear()
    impatient = asyncio.create_task(batcher.submit(0))
    patient = asyncio.create_task(batcher.submit(2))
    while not flush.calls:
        await asyncio.sleep(0)
    impatient.cancel()
    flush.gate.set()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert flush.calls == [[0, 2]]  # the item was still written


async def test_an_item_submitted_as_the_last_flush_ends_is_flushed() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder())
    assert await batcher.submit(2) == 20
    # submitted while the finished flushing task is not yet reaped
    async with asyncio.timeout(5):
        assert await batcher.submit(4) == 40


async def test_parallel_flushes_take_the_items_waiting_in_turn() -> None:
    flush = Recorder()
    batcher: Batcher[int, int] = Batcher(flush, max_items=2, parallel=2)
    flush.gate.clear()
    waiting = [asyncio.create_task(batcher.submit(i * 2)) for i in range(5)]
    while len(flush.calls) < 2:  # two flushes at once, held open
        await asyncio.sleep(0)
    assert flush.calls == [[0, 2], [4, 6]]
    flush.gate.set()
    assert await asyncio.gather(*waiting) == [0, 20, 40, 60, 80]
    assert flush.calls == [[0, 2], [4, 6], [8]]


def test_a_batch_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Batcher(Recorder(), max_items=0)
