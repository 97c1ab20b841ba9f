"""The outbox on the orders database: ``enqueue`` for producers, ``SqlOutboxStore`` for workers.

``enqueue`` adds rows to the caller's open transaction, so a message is committed exactly when
the change it announces is. ``SqlOutboxStore.claim`` hands each due row to one caller across
processes: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, on SQLite under the write
lock ``BEGIN IMMEDIATE`` takes. A claim moves ``due_at`` to the end of the lease and bumps
``attempts``; completing or rescheduling a job is conditional on ``attempts`` still being the
claim's, so a worker whose lease ran out (and whose job another worker took over) changes
nothing.

``OutboxNudge`` wakes this process's workers right after a transaction that enqueued commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, and_, delete, event, func, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from snapreport.errors import InvalidInput, SnapreportError, StoreUnavailable
from snapreport.orders.database import writer
from snapreport.outbox.base import (
    MAX_PAYLOAD_BYTES,
    MAX_TOPIC_LENGTH,
    DeadLetter,
    Failure,
    JobStatus,
    OutboxJob,
    OutboxMessage,
)
from snapreport.outbox.tables import OutboxRow

Clock = Callable[[], float]

ENQUEUED = "snapreport.outbox.enqueued"
MAX_ERROR_LENGTH = 2000


POSTGRES_PARALLEL_WRITES = 4


def encode_payload(message: OutboxMessage) -> str:
    """The message's payload as JSON text; refuses what cannot be stored."""
    if not message.topic or len(message.topic) > MAX_TOPIC_LENGTH:
        raise InvalidInput(f"an outbox topic has 1 to {MAX_TOPIC_LENGTH} characters")
    if message.due_at is not None and message.due_at.tzinfo is None:
        raise InvalidInput("an outbox due_at must be timezone-aware")
    try:
        encoded = msgspec.json.encode(message.payload)
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidInput(f"outbox payload of {message.topic!r} is not JSON: {exc}") from exc
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"outbox payload of {message.topic!r} exceeds {MAX_PAYLOAD_BYTES} bytes")
    return encoded.decode()


def enqueue(session: AsyncSession, *messages: OutboxMessage, now: datetime | None = None) -> None:
    """Add ``messages`` to the caller's open transaction; never commits.

    ``now`` (default: the wall clock) is the messages' creation time and the due time of those
    without ``due_at``.
    """
    created = now or datetime.now(UTC)
    for message in messages:
        session.add(
            OutboxRow(
                topic=message.topic,
                payload=encode_payload(message),
                status="pending",
                attempts=0,
                due_at=message.due_at or created,
                created_at=created,
            )
        )
    if messages:
        session.sync_session.info[ENQUEUED] = True


async def enqueue_many(
    session: AsyncSession, messages: Sequence[OutboxMessage], *, now: datetime
) -> None:
    """``enqueue`` for many messages at once, as one multi-row insert (no ORM objects): for
    handlers that enqueue a round's worth in one transaction."""
    rows = [
        {
            "topic": message.topic,
            "payload": encode_payload(message),
            "status": "pending",
            "attempts": 0,
            "due_at": message.due_at or now,
            "created_at": now,
        }
        for message in messages
    ]
    if rows:
        # RETURNING makes it one statement a page (SQLAlchemy's "insertmanyvalues")
        await session.execute(
            insert(cast(Table, OutboxRow.__table__)).returning(OutboxRow.id), rows
        )
        session.sync_session.info[ENQUEUED] = True


class OutboxNudge:
    """Sets ``event`` after every commit of a session that enqueued, in this process.

    SQLAlchemy session events are process-wide; ``start``/``stop`` add and remove the
    listeners, so nothing is registered at import time.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def start(self) -> None:
        event.listen(Session, "after_commit", self._after_commit)
        event.listen(Session, "after_transaction_end", self._after_transaction_end)

    def stop(self) -> None:
        event.remove(Session, "after_commit", self._after_commit)
        event.remove(Session, "after_transaction_end", self._after_transaction_end)

    def _after_commit(self, session: Session) -> None:
        if session.info.get(ENQUEUED):
            self.event.set()

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # A method, not a function: two nudges (two apps in one process) register apart.
        if transaction.parent is None:
            session.info.pop(ENQUEUED, None)


@asynccontextmanager
async def store_guard(action: str) -> AsyncIterator[None]:
    """Driver errors become ``StoreUnavailable`` naming ``action`` (no SQL, no parameters)."""
    try:
        yield
    except SnapreportError:
        raise
    except (DBAPIError, PoolTimeout, OSError, sqlite3.Error) as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first = (str(cause).strip().splitlines() or [""])[0]
        raise StoreUnavailable(
            f"outbox database is unavailable ({action}): {type(cause).__name__}: {first}"
        ) from exc


_CLAIM_COLUMNS = (
    OutboxRow.id,
    OutboxRow.topic,
    OutboxRow.payload,
    OutboxRow.attempts,
    OutboxRow.due_at,
    OutboxRow.created_at,
)


def _claimed(row: Any) -> OutboxJob:
    """The job for a row of ``_CLAIM_COLUMNS`` read before the claim bumped its attempts."""
    return OutboxJob(
        id=row.id,
        topic=row.topic,
        payload=msgspec.json.decode(row.payload),
        attempt=row.attempts + 1,
        due_at=row.due_at,
        created_at=row.created_at,
    )


def _held(job: OutboxJob) -> Any:
    return and_(OutboxRow.id == job.id, OutboxRow.attempts == job.attempt)


async def complete_in(session: AsyncSession, job: OutboxJob) -> bool:
    """Delete ``job`` inside the caller's transaction if its claim still holds.

    A handler whose own writes must commit together with the job's completion (exactly
    once) calls this and rolls back when it returns False: the lease ran out, and another
    worker owns the job now.
    """
    result = await session.execute(delete(OutboxRow).where(_held(job)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def complete_held_in(session: AsyncSession, jobs: Sequence[OutboxJob]) -> set[int]:
    """``complete_in`` for many jobs in one statement: the ids of those whose claim still
    held (and that are now deleted); the caller writes nothing for the others."""
    if not jobs:
        return set()
    result = await session.execute(
        delete(OutboxRow)
        .where(tuple_(OutboxRow.id, OutboxRow.attempts).in_([(j.id, j.attempt) for j in jobs]))
        .returning(OutboxRow.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars().all())


def parallel_writes(engine: AsyncEngine) -> int:
    """Group-commit flushes worth running at once: PostgreSQL commits concurrent transactions
    side by side; SQLite's writers take turns at its one write lock, so one."""
    return POSTGRES_PARALLEL_WRITES if engine.dialect.name == "postgresql" else 1


class SqlOutboxStore:
    """The ``OutboxStore`` port on the orders engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer(engine), expire_on_commit=False)

    @property
    def parallel_writes(self) -> int:
        """How many group-commit flushes are worth running at once on this database."""
        return parallel_writes(self._engine)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """Write sessions on the outbox's database, for handlers that write with ``complete_in``."""
        return self._writes

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def claim(self, limit: int, lease_seconds: float) -> Sequence[OutboxJob]:
        now = self.now()
        # Columns, not entities: a claim is the worker's hot path.
        query = (
            select(*_CLAIM_COLUMNS)
            .where(OutboxRow.status == "pending", OutboxRow.due_at <= now)
            .order_by(OutboxRow.due_at)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        async with self._write("claiming") as session:
            rows = (await session.execute(query)).all()
            if not rows:
                return []
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_([row.id for row in rows]))
                .values(
                    attempts=OutboxRow.attempts + 1,
                    due_at=now + timedelta(seconds=lease_seconds),
                )
                .execution_options(synchronize_session=False)
            )
            return [_claimed(row) for row in rows]

    async def complete(self, jobs: Sequence[OutboxJob]) -> int:
        if not jobs:
            return 0
        async with self._write("completing") as session:
            result = await session.execute(
                # one row-value IN, not an OR per job: cheap to build for a whole batch
                delete(OutboxRow).where(
                    tuple_(OutboxRow.id, OutboxRow.attempts).in_(
                        [(job.id, job.attempt) for job in jobs]
                    )
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def fail(self, failures: Sequence[Failure]) -> None:
        if not failures:
            return
        now = self.now()
        async with self._write("recording a failure") as session:
            for failure in failures:
                error = failure.error[:MAX_ERROR_LENGTH]
                if failure.retry_at is None:
                    values: dict[str, Any] = {
                        "status": "dead",
                        "dead_at": now,
                        "last_error": error,
                    }
                else:
                    values = {"due_at": failure.retry_at, "last_error": error}
                await session.execute(update(OutboxRow).where(_held(failure.job)).values(values))

    async def next_due(self) -> datetime | None:
        query = select(func.min(OutboxRow.due_at)).where(OutboxRow.status == "pending")
        async with self._read("looking for due jobs") as session:
            value: datetime | None = (await session.execute(query)).scalar_one_or_none()
        return value

    async def dead_letters(self, *, after: int, limit: int) -> Sequence[DeadLetter]:
        query = (
            select(OutboxRow)
            .where(OutboxRow.status == "dead", OutboxRow.id > after)
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        async with self._read("listing dead letters") as session:
            return [
                DeadLetter(
                    id=row.id,
                    topic=row.topic,
                    payload=msgspec.json.decode(row.payload),
                    attempts=row.attempts,
                    last_error=row.last_error or "",
                    created_at=row.created_at,
                    dead_at=row.dead_at or row.created_at,
                )
                for row in (await session.scalars(query)).all()
            ]

    async def retry_dead(self, job_id: int) -> bool:
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id == job_id, OutboxRow.status == "dead")
            .values(status="pending", attempts=0, due_at=self.now(), dead_at=None)
        )
        async with self._write("retrying a dead letter") as session:
            result = await session.execute(statement)
            retried = bool(result.rowcount)  # type: ignore[attr-defined]
            if retried:
                session.sync_session.info[ENQUEUED] = True
            return retried

    async def counts(self) -> Mapping[JobStatus, int]:
        query = select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
        async with self._read("counting") as session:
            found: dict[str, int] = dict((await session.execute(query)).all())
        return {"pending": found.get("pending", 0), "dead": found.get("dead", 0)}

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[AsyncSession]:
        async with store_guard(action), self._reads() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[AsyncSession]:
        async with store_guard(action), self._writes() as session, session.begin():
            yield session
