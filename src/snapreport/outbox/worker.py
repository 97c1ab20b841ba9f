"""``OutboxWorker``: claims due outbox jobs and runs the handler registered for each topic.

One worker runs in every server process. Each round it claims a batch (exclusive across
processes, see ``OutboxStore.claim``), runs the handlers concurrently, each within a timeout
shorter than the lease, then deletes the delivered jobs and reschedules the failed ones with
exponential backoff and jitter; a job that failed ``max_attempts`` times is dead-lettered.
Between rounds it waits for the earliest due job, at most ``poll_seconds``, and wakes at once
when a transaction of this process enqueued (``OutboxNudge``).

A job is completed only after its handler returned: a crash in between (or a lease that ran
out) delivers it again, so handlers must tolerate a repeat, and those that write to the
database make their writes and the completion one transaction (``complete_in``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from snapreport.errors import SnapreportError
from snapreport.logs import get_logger
from snapreport.outbox.base import Failure, OutboxHandler, OutboxJob, OutboxStore

log = get_logger("snapreport.outbox")

Clock = Callable[[], float]
STOP_GRACE_SECONDS = 10.0
ROUNDS_IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker claims, waits and retries (``SNAPREPORT_OUTBOX__*``)."""

    batch_size: int = 100
    concurrency: int = 64
    lease_seconds: float = 60.0
    handler_timeout_seconds: float = 30.0
    poll_seconds: float = 0.1
    max_attempts: int = 16
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 3600.0


class OutboxObserver(Protocol):
    """What the worker reports (metrics)."""

    def delivered(self, topic: str, lag_seconds: float) -> None: ...

    def failed(self, topic: str) -> None: ...

    def dead(self, topic: str) -> None: ...


class Routes:
    """Handlers by topic: an exact topic, or a prefix ending in "." (the longest one wins)."""

    def __init__(self, handlers: Mapping[str, OutboxHandler]) -> None:
        self._exact = {topic: h for topic, h in handlers.items() if not topic.endswith(".")}
        self._prefixes = sorted(
            ((topic, h) for topic, h in handlers.items() if topic.endswith(".")),
            key=lambda item: -len(item[0]),
        )

    def completes_itself(self, topic: str) -> bool:
        """True when the topic's handler deletes its job in its own transaction (it says so
        with a true ``completes_own_jobs`` attribute): the worker then has nothing to do."""
        return bool(getattr(self.handler_for(topic), "completes_own_jobs", False))

    def handler_for(self, topic: str) -> OutboxHandler | None:
        handler = self._exact.get(topic)
        if handler is not None:
            return handler
        for prefix, candidate in self._prefixes:
            if topic.startswith(prefix):
                return candidate
        return None


def backoff_seconds(attempt: int, config: WorkerConfig, rand: Callable[[], float]) -> float:
    """The wait after failed attempt ``attempt`` (1-based): base * 2**(attempt-1), capped, then
    scaled by a random factor in [0.5, 1) so that jobs failing together spread out."""
    exponent = min(attempt - 1, 62)
    delay = min(config.backoff_max_seconds, config.backoff_base_seconds * 2.0**exponent)
    return delay * (0.5 + rand() / 2)


class OutboxWorker:
    """Delivers outbox jobs until closed; ``run_once`` is one round, for tests and tools."""

    def __init__(
        self,
        store: OutboxStore,
        routes: Routes,
        *,
        config: WorkerConfig | None = None,
        clock: Clock = time.time,
        wake: asyncio.Event | None = None,
        observer: OutboxObserver | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._routes = routes
        self._config = config or WorkerConfig()
        self._clock = clock
        self._wake = wake or asyncio.Event()
        self._observer = observer
        self._rand = rand
        self._limit = asyncio.Semaphore(self._config.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Run in the background until ``aclose``."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def aclose(self) -> None:
        """Stop claiming, let the round in progress finish (bounded), then return.

        A round cut off at the bound leaves its jobs leased; they are delivered again when
        the lease runs out."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning("outbox_stop_cut_off", grace_seconds=STOP_GRACE_SECONDS)

    async def run_once(self) -> int:
        """Claim one batch of due jobs and deliver it; returns how many were claimed."""
        jobs = await self._store.claim(self._config.batch_size, self._config.lease_seconds)
        if jobs:
            await self._deliver_batch(jobs)
        return len(jobs)

    async def _deliver_batch(self, jobs: Sequence[OutboxJob]) -> None:
        """Run the handlers of ``jobs``, then record the outcomes in two statements."""
        outcomes = await asyncio.gather(*(self._deliver(job) for job in jobs))
        delivered = [job for job, failure in zip(jobs, outcomes, strict=True) if failure is None]
        failures = [failure for failure in outcomes if failure is not None]
        # a handler that completed its job itself (``complete_in``) leaves nothing to delete
        await self._store.complete(
            [job for job in delivered if not self._routes.completes_itself(job.topic)]
        )
        await self._store.fail(failures)
        if self._observer is not None:
            now = self._clock()
            for job in delivered:
                self._observer.delivered(job.topic, max(0.0, now - job.due_at.timestamp()))
            for failure in failures:
                self._observer.failed(failure.job.topic)
                if failure.retry_at is None:
                    self._observer.dead(failure.job.topic)

    async def _deliver(self, job: OutboxJob) -> Failure | None:
        handler = self._routes.handler_for(job.topic)
        if handler is None:
            return self._failure(job, f"no handler for topic {job.topic!r}")
        async with self._limit:
            try:
                async with asyncio.timeout(self._config.handler_timeout_seconds):
                    await handler(job)
            except TimeoutError:
                return self._failure(
                    job, f"timed out after {self._config.handler_timeout_seconds} s"
                )
            except SnapreportError as exc:
                return self._failure(job, f"{exc.code}: {exc.message}")
            except Exception as exc:  # a handler's bug must not stop the worker
                return self._failure(job, f"{type(exc).__name__}: {exc}")
        return None

    def _failure(self, job: OutboxJob, error: str) -> Failure:
        if job.attempt >= self._config.max_attempts:
            log.error("outbox_dead_letter", job_id=job.id, topic=job.topic, error=error)
            return Failure(job, error, None)
        delay = backoff_seconds(job.attempt, self._config, self._rand)
        retry_at = datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=delay)
        log.warning(
            "outbox_retry",
            job_id=job.id,
            topic=job.topic,
            attempt=job.attempt,
            retry_in_seconds=round(delay, 3),
            error=error,
        )
        return Failure(job, error, retry_at)

    async def _run(self) -> None:
        # Up to ROUNDS_IN_FLIGHT batches at once: the next claim overlaps the tail of the
        # previous batch's deliveries (the semaphore still bounds the handlers running).
        rounds: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                # Cleared before the claim: a nudge that arrives after it ends the wait below.
                self._wake.clear()
                try:
                    jobs = await self._store.claim(
                        self._config.batch_size, self._config.lease_seconds
                    )
                    if jobs:
                        task = asyncio.create_task(self._guarded_batch(jobs))
                        rounds.add(task)
                        task.add_done_callback(rounds.discard)
                    if len(rounds) >= ROUNDS_IN_FLIGHT:
                        await asyncio.wait(rounds, return_when=asyncio.FIRST_COMPLETED)
                    if len(jobs) >= self._config.batch_size:
                        continue
                    wait = await self._idle_wait()
                except SnapreportError as exc:
                    log.warning("outbox_store_unavailable", error=exc.message)
                    wait = self._config.poll_seconds * 10
                if wait > 0 and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            if rounds:
                await asyncio.wait(rounds)

    async def _guarded_batch(self, jobs: Sequence[OutboxJob]) -> None:
        try:
            await self._deliver_batch(jobs)
        except SnapreportError as exc:
            # Not recorded: the jobs are delivered again when their lease runs out.
            log.warning("outbox_outcome_not_recorded", jobs=len(jobs), error=exc.message)

    async def _idle_wait(self) -> float:
        """Seconds until the earliest job falls due, at most ``poll_seconds`` (other processes
        enqueue too, and this one does not hear of it)."""
        due = await self._store.next_due()
        if due is None:
            return self._config.poll_seconds
        return min(self._config.poll_seconds, max(0.0, due.timestamp() - self._clock()))


def route_table(handlers: Sequence[tuple[str, OutboxHandler]]) -> Routes:
    """``Routes`` from (topic, handler) pairs; a topic registered twice is a mistake."""
    table: dict[str, OutboxHandler] = {}
    for topic, handler in handlers:
        if topic in table:
            raise ValueError(f"two outbox handlers for {topic!r}")
        table[topic] = handler
    return Routes(table)
