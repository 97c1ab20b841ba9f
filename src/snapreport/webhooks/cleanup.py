"""Clean-up of the delivery log and the sent messages by age (``WEBHOOKS__KEEP_DAYS``).

It runs beside the outbox worker of every server process: shortly after the start, then every
hour. A run deletes in bounded batches, each its own short transaction, so writers never wait
long behind it: log rows older than ``keep_days``, then messages older than that with no log
row left (a message redelivered lately keeps its log, so it stays). Deletes are conditional
on age alone, so processes that run at the same time only share the work.

``keep_days`` is at least two (``WebhooksSettings``): longer than the retry schedule (about 28
hours), so no message is deleted while a retry of it is still due.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snapreport.errors import SnapreportError
from snapreport.logs import get_logger
from snapreport.orders.database import writer
from snapreport.outbox.sqlalchemy import store_guard
from snapreport.webhooks.tables import WebhookAttemptRow, WebhookMessageRow

log = get_logger("snapreport.webhooks")

Clock = Callable[[], float]
BATCH: Final = 500  # rows one transaction deletes at most
MAX_BATCHES: Final = 200  # transactions one run makes at most; the next run goes on
INTERVAL_SECONDS: Final = 3600.0
FIRST_RUN_WITHIN_SECONDS: Final = 60.0  # processes started together spread out


class WebhookCleanup:
    """Deletes old log rows and messages (see module doc); ``run_once`` is one run."""

    def __init__(self, engine: AsyncEngine, *, keep_days: int, clock: Clock = time.time) -> None:
        self._sessions = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._keep = timedelta(days=keep_days)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background until ``aclose``."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-cleanup")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> tuple[int, int]:
        """One run: how many log rows and messages it deleted."""
        cutoff = datetime.fromtimestamp(self._clock(), UTC) - self._keep
        attempts = messages = 0
        for _ in range(MAX_BATCHES):
            async with (
                store_guard("cleaning up webhook deliveries"),
                self._sessions() as session,
                session.begin(),
            ):
                deleted = await _delete_attempts(session, cutoff)
                # messages once their log rows are gone (a full batch: more rows first)
                deleted_messages = await _delete_messages(session, cutoff) if deleted < BATCH else 0
            attempts += deleted
            messages += deleted_messages
            if deleted < BATCH and deleted_messages < BATCH:
                break
        if attempts or messages:
            log.info(
                "webhook_cleanup",
                attempts_deleted=attempts,
                messages_deleted=messages,
                older_than=cutoff.isoformat(),
            )
        return attempts, messages

    async def _run(self) -> None:
        wait = random.uniform(0, FIRST_RUN_WITHIN_SECONDS)
        while True:
            await asyncio.sleep(wait)
            wait = INTERVAL_SECONDS
            try:
                await self.run_once()
            except SnapreportError as exc:  # the database is away: the next run tries again
                log.warning("webhook_cleanup_failed", error=exc.message)


async def _delete_attempts(session: AsyncSession, cutoff: datetime) -> int:
    oldest = (
        select(WebhookAttemptRow.id)
        .where(WebhookAttemptRow.at < cutoff)
        .order_by(WebhookAttemptRow.at)
        .limit(BATCH)
    )
    result = await session.execute(
        delete(WebhookAttemptRow)
        .where(WebhookAttemptRow.id.in_(oldest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _delete_messages(session: AsyncSession, cutoff: datetime) -> int:
    logged = exists().where(WebhookAttemptRow.message_id == WebhookMessageRow.id)
    oldest = (
        select(WebhookMessageRow.id)
        .where(WebhookMessageRow.created_at < cutoff, ~logged)
        .order_by(WebhookMessageRow.created_at)
        .limit(BATCH)
    )
    result = await session.execute(
        delete(WebhookMessageRow)
        .where(WebhookMessageRow.id.in_(oldest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
