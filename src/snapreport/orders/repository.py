"""``SqlOrderRepository``: the ``OrderRepository`` port on SQLAlchemy (SQLite or PostgreSQL).

Every public method is one transaction. Rules that must hold under concurrency are enforced
by the database, not by a read-then-write in Python: order numbers come from a per-day counter
row bumped by an upsert in the creating transaction, and ``close`` is a conditional ``UPDATE
... WHERE status = 'open' AND <by is reporter or assignee>``, so of two concurrent closes
exactly one wins. A create or close that names its message writes an ``order_sources`` row in
the same transaction; the row's unique key (channel, user, message id) makes a second write
for that message impossible, and the retry reads the first one's order instead. Driver errors
become ``StoreUnavailable``; messages never show a password.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from alembic.util.exc import CommandError
from sqlalchemy import ColumnElement, Select, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snapreport.errors import (
    ConfigurationError,
    InvalidInput,
    NotOrderOwner,
    OrderAlreadyClosed,
    OrderNotFound,
    SnapreportError,
    StoreUnavailable,
)
from snapreport.logs import get_logger
from snapreport.orders.base import (
    MessageKey,
    NewReport,
    Order,
    OrderAction,
    OrderEvent,
    OrderStatus,
)
from snapreport.orders.database import (
    create_orders_engine,
    enable_wal,
    parse_url,
    safe_url,
    writer,
)
from snapreport.orders.migrations import migration_lock, upgrade_to_head
from snapreport.orders.numbering import day_key, format_number, normalize_number
from snapreport.orders.tables import (
    CHANNEL_LENGTH,
    MEDIA_KEY_LENGTH,
    MESSAGE_ID_LENGTH,
    USER_ID_LENGTH,
    AlarmRow,
    OrderCounterRow,
    OrderEventRow,
    OrderSourceRow,
    WorkOrderRow,
)

Clock = Callable[[], float]

log = get_logger("snapreport.orders")

MAX_LIST_LIMIT = 1000
_LIMITS = {
    "reporter": USER_ID_LENGTH,
    "assignee": USER_ID_LENGTH,
    "actor": USER_ID_LENGTH,
    "by": USER_ID_LENGTH,
    "alarm_type": 64,
    "source": 32,
    "kind": 32,
    "image_key": MEDIA_KEY_LENGTH,
    "close_image_key": MEDIA_KEY_LENGTH,
    "channel": CHANNEL_LENGTH,
    "user_id": USER_ID_LENGTH,
    "message_id": MESSAGE_ID_LENGTH,
}


class _MessageSeen(Exception):  # never leaves this module
    """The ``order_sources`` unique key refused a row: the message already wrote its order."""

    def __init__(self, message: MessageKey) -> None:
        super().__init__(message.message_id)
        self.message = message


def _check(field: str, value: str | None, *, required: bool = True) -> None:
    """Refuse values the schema cannot hold, before the database does it less clearly."""
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required")
        return
    if required and not value.strip():
        raise InvalidInput(f"{field} must not be empty")
    limit = _LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")


def _to_order(row: WorkOrderRow) -> Order:
    alarm = row.alarm
    status: OrderStatus = "open" if row.status == "open" else "closed"
    return Order(
        number=row.number,
        status=status,
        alarm_id=str(alarm.id),
        alarm_type=alarm.alarm_type,
        location=alarm.location,
        description=alarm.description,
        reporter=row.reporter,
        assignee=row.assignee,
        image_key=alarm.image_key,
        close_image_key=row.close_image_key,
        created_at=row.created_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        close_verified=row.close_verified,
        close_note=row.close_note,
        forced=row.forced,
    )


def _check_message(message: MessageKey | None) -> None:
    if message is not None:
        for field in ("channel", "user_id", "message_id"):
            _check(field, getattr(message, field))


def _replayed(wanted: OrderAction, message: MessageKey, action: str, row: WorkOrderRow) -> Order:
    """The order a message already wrote, if it wrote it by the ``wanted`` action."""
    if action != wanted:
        raise InvalidInput(
            f"message {message.message_id!r} of {message.user_id!r} already did "
            f"{action} on work order {row.number}; send new messages with new ids"
        )
    log.info(
        "order_write_replayed",
        action=action,
        number=row.number,
        channel=message.channel,
        message_id=message.message_id,
    )
    return _to_order(row)


def _is_owner(user_id: str) -> ColumnElement[bool]:
    return or_(WorkOrderRow.reporter == user_id, WorkOrderRow.assignee == user_id)


def _ensure_closable(row: WorkOrderRow, user_id: str) -> None:
    if row.status != "open":
        raise OrderAlreadyClosed(f"work order {row.number} is already closed")
    if user_id not in (row.reporter, row.assignee):
        raise NotOrderOwner(
            f"work order {row.number} can only be closed by its reporter or its assignee"
        )


class SqlOrderRepository:
    """Alarms and work orders in SQLite (default) or PostgreSQL, schema kept by Alembic.

    Build it with ``await SqlOrderRepository.connect(url)``, which migrates the schema to
    head; close it with ``await repo.aclose()``.
    """

    def __init__(self, engine: AsyncEngine, *, where: str, clock: Clock = time.time) -> None:
        self._engine = engine
        self._where = where
        self._clock = clock
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._upsert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    async def connect(
        cls, url: str, *, clock: Clock = time.time, connect_timeout: float = 10.0
    ) -> SqlOrderRepository:
        """Open the database at ``url`` and bring its schema to head.

        Raises ``ConfigurationError`` for a URL that cannot work, ``StoreUnavailable`` when the
        database cannot be reached.
        """
        parsed = parse_url(url)
        engine = create_orders_engine(parsed, connect_timeout=connect_timeout)
        repository = cls(engine, where=safe_url(parsed), clock=clock)
        try:
            await repository.migrate()
        except BaseException:
            await engine.dispose()
            raise
        return repository

    async def migrate(self) -> None:
        """Apply the shipped migrations not yet applied (safe to run from several processes)."""
        async with self._guard("migrating the schema"):
            if self._engine.dialect.name == "sqlite":
                await enable_wal(self._engine)
            try:
                async with migration_lock(), writer(self._engine).begin() as connection:
                    await connection.run_sync(upgrade_to_head)
            except CommandError as exc:
                raise ConfigurationError(
                    f"orders database {self._where} cannot be migrated: {exc} "
                    "(was it created by a newer snapreport?)"
                ) from exc

    @property
    def engine(self) -> AsyncEngine:
        """The database engine, shared with stores on the same database (the outbox)."""
        return self._engine

    # -- the port --------------------------------------------------------------------------

    async def create(self, report: NewReport) -> Order:
        """Create an alarm and its open work order, logging a ``created`` event; with
        ``report.message``, the order that message created if there is one."""
        for field in ("reporter", "alarm_type", "source"):
            _check(field, getattr(report, field))
        _check("assignee", report.assignee, required=False)
        _check("image_key", report.image_key, required=False)
        _check_message(report.message)
        if report.confidence is not None and not math.isfinite(report.confidence):
            raise InvalidInput("confidence must be a finite number")
        try:
            return await self._create(report)
        except _MessageSeen as seen:
            return await self._replay("create", seen.message)

    async def _create(self, report: NewReport) -> Order:
        now = self._now()
        day = day_key(now)
        async with self._write("creating a work order") as session:
            if report.message is not None:
                found = await self._source(session, report.message)
                if found is not None:
                    return _replayed("create", report.message, *found)
            sequence = await self._next_sequence(session, day)
            alarm = AlarmRow(
                alarm_type=report.alarm_type,
                description=report.description,
                confidence=report.confidence,
                image_key=report.image_key,
                location=report.location,
                reporter=report.reporter,
                source=report.source,
                created_at=now,
            )
            row = WorkOrderRow(
                number=format_number(day, sequence),
                alarm=alarm,
                status="open",
                reporter=report.reporter,
                assignee=report.assignee,
                forced=False,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            detail = f"{report.alarm_type} @ {report.location} (source: {report.source})"
            session.add(
                OrderEventRow(
                    order_id=row.id, kind="created", actor=report.reporter, detail=detail, at=now
                )
            )
            await self._add_source(session, report.message, "create", row.id, now)
            return _to_order(row)

    async def get(self, number: str) -> Order:
        """The order with ``number`` (any case, spaces around ignored)."""
        async with self._read("reading a work order") as session:
            return _to_order(await self._find(session, number))

    async def list(
        self,
        *,
        status: OrderStatus | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Order]:
        """Orders newest first; ``user_id`` matches the reporter or the assignee."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if status not in (None, "open", "closed"):
            raise InvalidInput(f"unknown order status {status!r}")
        query = self._newest_first(status=status, user_id=user_id).limit(limit)
        async with self._read("listing work orders") as session:
            return [_to_order(row) for row in (await session.scalars(query)).all()]

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        """Open orders the user reported or is assigned to, newest first."""
        query = self._newest_first(status="open", user_id=user_id)
        async with self._read("listing open work orders") as session:
            return [_to_order(row) for row in (await session.scalars(query)).all()]

    async def has_image(self, user_id: str, key: str) -> bool:
        """Whether ``key`` is the report or close photo of one of the user's orders."""
        query = (
            select(WorkOrderRow.id)
            .join(AlarmRow, WorkOrderRow.alarm_id == AlarmRow.id)
            .where(
                _is_owner(user_id),
                or_(AlarmRow.image_key == key, WorkOrderRow.close_image_key == key),
            )
            .limit(1)
        )
        async with self._read("looking up a photo") as session:
            return (await session.scalar(query)) is not None

    async def check_can_close(self, number: str, user_id: str) -> Order:
        """The order, if it exists, is open and is the user's; else the specific error."""
        async with self._read("reading a work order") as session:
            row = await self._find(session, number)
            _ensure_closable(row, user_id)
            return _to_order(row)

    async def close(
        self,
        number: str,
        *,
        by: str,
        close_image_key: str | None,
        verified: bool | None,
        note: str,
        forced: bool,
        message: MessageKey | None = None,
    ) -> Order:
        """Close an open order of ``by``'s, logging a ``closed`` event; with ``message``, the
        order that message closed if there is one."""
        _check("by", by)
        _check("close_image_key", close_image_key, required=False)
        _check_message(message)
        try:
            return await self._close(
                number,
                by=by,
                close_image_key=close_image_key,
                verified=verified,
                note=note,
                forced=forced,
                message=message,
            )
        except _MessageSeen as seen:
            return await self._replay("close", seen.message)

    async def _close(
        self,
        number: str,
        *,
        by: str,
        close_image_key: str | None,
        verified: bool | None,
        note: str,
        forced: bool,
        message: MessageKey | None,
    ) -> Order:
        wanted = normalize_number(number)
        now = self._now()
        statement = (
            update(WorkOrderRow)
            .where(WorkOrderRow.number == wanted, WorkOrderRow.status == "open", _is_owner(by))
            .values(
                status="closed",
                closed_by=by,
                closed_at=now,
                close_image_key=close_image_key,
                close_verified=verified,
                close_note=note,
                forced=forced,
            )
            .returning(WorkOrderRow.id)
            .execution_options(synchronize_session=False)
        )
        async with self._write("closing a work order") as session:
            if message is not None:
                found = await self._source(session, message)
                if found is not None:
                    return _replayed("close", message, *found)
            closed_id = (await session.execute(statement)).scalar_one_or_none()
            if closed_id is None:
                # Nothing matched: say precisely why (seen after any concurrent close).
                row = await self._find(session, wanted)
                _ensure_closable(row, by)
                raise OrderAlreadyClosed(f"work order {row.number} was closed concurrently")
            detail = f"[forced] {note}" if forced else note
            session.add(
                OrderEventRow(order_id=closed_id, kind="closed", actor=by, detail=detail, at=now)
            )
            await self._add_source(session, message, "close", closed_id, now)
            row = await self._find(session, wanted)
            return _to_order(row)

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        """What the message did (``create`` or ``close``) and that order as it is now; None if
        it wrote nothing."""
        _check_message(message)
        async with self._read("reading a message's work order") as session:
            found = await self._source(session, message)
        if found is None:
            return None
        action: OrderAction = "create" if found[0] == "create" else "close"
        return action, _to_order(found[1])

    async def record_event(self, number: str, *, kind: str, actor: str, detail: str) -> None:
        """Append to an order's event log (e.g. a close photo that was not accepted)."""
        _check("kind", kind)
        _check("actor", actor)
        now = self._now()
        async with self._write("recording a work order event") as session:
            order_id = await self._find_id(session, number)
            session.add(
                OrderEventRow(order_id=order_id, kind=kind, actor=actor, detail=detail, at=now)
            )

    async def events(self, number: str) -> Sequence[OrderEvent]:
        """The order's event log, oldest first."""
        async with self._read("reading work order events") as session:
            row = await self._find(session, number)
            query = (
                select(OrderEventRow)
                .where(OrderEventRow.order_id == row.id)
                .order_by(OrderEventRow.at, OrderEventRow.id)
            )
            return [
                OrderEvent(
                    order_number=row.number,
                    kind=event.kind,
                    actor=event.actor,
                    detail=event.detail,
                    at=event.at,
                )
                for event in (await session.scalars(query)).all()
            ]

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers ``SELECT 1``."""
        async with self._guard("pinging"), self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @staticmethod
    def _newest_first(*, status: OrderStatus | None, user_id: str | None) -> Select[WorkOrderRow]:
        query = select(WorkOrderRow)
        if status is not None:
            query = query.where(WorkOrderRow.status == status)
        if user_id is not None:
            query = query.where(_is_owner(user_id))
        return query.order_by(WorkOrderRow.created_at.desc(), WorkOrderRow.id.desc())

    async def _next_sequence(self, session: AsyncSession, day: str) -> int:
        # The upsert locks the day's counter row until commit: concurrent creators queue here.
        insert = self._upsert(OrderCounterRow).values(day=day, last=1)
        statement = insert.on_conflict_do_update(
            index_elements=[OrderCounterRow.day], set_={"last": OrderCounterRow.last + 1}
        ).returning(OrderCounterRow.last)
        sequence: int = (await session.execute(statement)).scalar_one()
        return sequence

    @staticmethod
    async def _source(
        session: AsyncSession, message: MessageKey
    ) -> tuple[str, WorkOrderRow] | None:
        """The action a message took and its order (read fresh), or None."""
        query = (
            select(OrderSourceRow.action, WorkOrderRow)
            .join(WorkOrderRow, OrderSourceRow.order_id == WorkOrderRow.id)
            .where(
                OrderSourceRow.channel == message.channel,
                OrderSourceRow.user_id == message.user_id,
                OrderSourceRow.message_id == message.message_id,
            )
            .execution_options(populate_existing=True)
        )
        found = (await session.execute(query)).first()
        return None if found is None else (found[0], found[1])

    @staticmethod
    async def _add_source(
        session: AsyncSession,
        message: MessageKey | None,
        action: OrderAction,
        order_id: int,
        now: datetime,
    ) -> None:
        """Record which message wrote the order; ``_MessageSeen`` if it already wrote one."""
        if message is None:
            return
        session.add(
            OrderSourceRow(
                channel=message.channel,
                user_id=message.user_id,
                message_id=message.message_id,
                action=action,
                order_id=order_id,
                at=now,
            )
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise _MessageSeen(message) from exc

    async def _replay(self, wanted: OrderAction, message: MessageKey) -> Order:
        """After a concurrent write with the same key won: the order it wrote."""
        async with self._read("reading a message's work order") as session:
            found = await self._source(session, message)
        if found is None:  # the unique key refused our row, so the row exists
            raise StoreUnavailable("the orders database lost a committed message key")
        return _replayed(wanted, message, *found)

    @staticmethod
    async def _find(session: AsyncSession, number: str) -> WorkOrderRow:
        wanted = normalize_number(number)
        query = select(WorkOrderRow).where(WorkOrderRow.number == wanted)
        row = (await session.scalars(query.execution_options(populate_existing=True))).first()
        if row is None:
            raise OrderNotFound(f"no work order {wanted!r}")
        return row

    @staticmethod
    async def _find_id(session: AsyncSession, number: str) -> int:
        wanted = normalize_number(number)
        query = select(WorkOrderRow.id).where(WorkOrderRow.number == wanted)
        order_id = (await session.execute(query)).scalar_one_or_none()
        if order_id is None:
            raise OrderNotFound(f"no work order {wanted!r}")
        return order_id

    @asynccontextmanager
    async def _guard(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except (SnapreportError, _MessageSeen):
            raise
        except (DBAPIError, PoolTimeout, OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"orders database {self._where} is unavailable ({action}): {_reason(exc)}"
            ) from exc

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[AsyncSession]:
        async with self._guard(action), self._reads() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[AsyncSession]:
        async with self._guard(action), self._writes() as session, session.begin():
            yield session


def _reason(exc: BaseException) -> str:
    """A short cause, without the SQL statement and parameters SQLAlchemy appends."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__
