"""Group commit: the writes (or reads) of concurrently running handlers, done together.

The worker runs many handlers at once. Were each to open its own transaction, they would queue
for the database (SQLite's one write lock, PostgreSQL's pool and commits) and a round would
cost a transaction per job. With a ``Batcher``, a handler submits an item and waits for its
outcome; one task at a time takes every item submitted so far (at most ``max_items``) and
handles them all with one call of ``flush`` (one transaction). An item waits at most for the
flush in progress and its own; alone, it is flushed on the next turn of the event loop, so a
quiet system adds no delay.

``flush`` returns one outcome per item, in order: a result, or the exception that item's
submitter raises (so one item can fail alone, e.g. a lost claim). When ``flush`` raises,
every item of the call raises it: their jobs are retried by the worker with jittered backoff,
so an item that makes the whole call fail soon finds itself in a call of its own.

A submitter that stops waiting (a handler timeout) does not withdraw its item: it is still
written, under the same conditions (the job's claim) as if it had waited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_ITEMS = 200


class Batcher(Generic[T, R]):
    """Collects items from concurrent callers and flushes them together (see module doc);
    at most ``parallel`` flushes run at once (1 on SQLite, whose writers queue anyway)."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        parallel: int = 1,
    ) -> None:
        if max_items < 1 or parallel < 1:
            raise ValueError("a batch holds at least one item, and one flush at least runs")
        self._flush = flush
        self._max_items = max_items
        self._parallel = parallel
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0  # flushing tasks; counted down as each ends, not when it is reaped
        self._drains: set[asyncio.Task[None]] = set()  # held, so that none is collected

    async def submit(self, item: T) -> R:
        """The outcome of ``item``'s flush: its result, or its exception raised here."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self._parallel:
            self._running += 1
            task = asyncio.create_task(self._drain(), name="outbox-batcher")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            # One turn of the loop first: handlers started together (a worker round) all
            # submit before the first flush, instead of the first one alone.
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self._max_items]
                del self._pending[: self._max_items]
                outcomes: Sequence[R | Exception]
                try:
                    outcomes = await self._flush([item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError("a flush returned a different number of outcomes")
                except Exception as exc:  # every item of the call fails with it
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its submitter stopped waiting
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
        except asyncio.CancelledError:
            # The loop is stopping: nobody is left waiting forever.
            for _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._running -= 1
