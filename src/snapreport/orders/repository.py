"""``SqlOrderRepository``: the ``OrderRepository`` port on SQLAlchemy (SQLite or PostgreSQL).

Every public method is one transaction, and every write adds the outbox messages its
``announce`` returns to that same transaction (``enqueue``), so a change and its notifications
commit together or not at all. Rules that must hold under concurrency are enforced by the
database, not by a read-then-write in Python: order numbers come from a per-day counter row
bumped by an upsert in the creating transaction (``round_robin`` turns likewise, per team);
``apply`` is a conditional ``UPDATE ... WHERE status, team and assignee are as seen`` and
``escalate`` one ``WHERE escalation < level AND <still due>``, so of concurrent changes exactly
one applies. A create, close or merge that names its message writes an ``order_sources`` row
in the same transaction; the row's unique key (channel, user, message id) makes a second write
for that message impossible, and the retry reads the first one's order instead. Driver errors become
``StoreUnavailable``; messages never show a password.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, cast

from alembic.util.exc import CommandError
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    false,
    func,
    or_,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from snapreport.errors import (
    ConfigurationError,
    InvalidInput,
    OrderNotFound,
    OrderStateConflict,
    SnapreportError,
    StoreUnavailable,
)
from snapreport.logs import get_logger
from snapreport.orders import stats as stats_sql
from snapreport.orders.base import (
    ACTIVE_STATUSES,
    MAX_ORDER_PHOTOS,
    ORDER_STATUSES,
    Announce,
    DuplicateQuery,
    EventKind,
    MessageKey,
    NewReport,
    Order,
    OrderAction,
    OrderChange,
    OrderEvent,
    OrderPage,
    OrderQuery,
    OrderStatus,
    Routing,
    StatsGroup,
    StatsQuery,
    no_announcements,
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
from snapreport.orders.places import location_key
from snapreport.orders.tables import (
    CHANNEL_LENGTH,
    MEDIA_KEY_LENGTH,
    MESSAGE_ID_LENGTH,
    SEARCH_INDEXES,
    TEAM_ID_LENGTH,
    USER_ID_LENGTH,
    AlarmPhotoRow,
    AlarmRow,
    AlsoReportedRow,
    OrderCounterRow,
    OrderEventRow,
    OrderSourceRow,
    TeamTurnRow,
    WorkOrderRow,
)
from snapreport.outbox.base import OutboxMessage
from snapreport.outbox.sqlalchemy import enqueue as enqueue_outbox

Clock = Callable[[], float]

log = get_logger("snapreport.orders")


class Enqueue(Protocol):
    """Adds outbox messages to the caller's open transaction (never commits)."""

    def __call__(
        self, session: AsyncSession, *messages: OutboxMessage, now: datetime | None = None
    ) -> None: ...


MAX_LIST_LIMIT = 1000
# the duplicate search looks at the newest this many recent alarms near a report
MAX_DUPLICATE_ALARMS = 200
# an offset walks the skipped rows: bounded, so a deep page costs at most this many
MAX_OFFSET = 100_000
# Text search on PostgreSQL with pg_trgm: up to this many matches are listed from their ids.
FEW_TEXT_MATCHES = 1000
TRIGRAM = 3
_LIMITS = {
    "reporter": USER_ID_LENGTH,
    "assignee": USER_ID_LENGTH,
    "actor": USER_ID_LENGTH,
    "closed_by": USER_ID_LENGTH,
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
    first = (alarm.image_key,) if alarm.image_key else ()
    return Order(
        number=row.number,
        status=cast(OrderStatus, row.status),
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
        team=row.team,
        accepted_at=row.accepted_at,
        due_accept_at=row.due_accept_at,
        due_resolve_at=row.due_resolve_at,
        escalation=row.escalation,
        latitude=alarm.latitude,
        longitude=alarm.longitude,
        reject_reason=row.reject_reason,
        also_reported_by=tuple(also.user_id for also in row.also_reported),
        image_keys=(*first, *(photo.image_key for photo in alarm.photos)),
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


def _action(stored: str) -> OrderAction:
    if stored == "create":
        return "create"
    return "merge" if stored == "merge" else "close"


def _check_report_photos(report: NewReport) -> None:
    _check("image_key", report.image_key, required=False)
    for key in report.more_image_keys:
        _check("image_key", key)
    if len(report.image_keys) > MAX_ORDER_PHOTOS:
        raise InvalidInput(f"a report has at most {MAX_ORDER_PHOTOS} photos")


def _involvement(user_id: str, postgres: bool) -> tuple[ColumnElement[bool], ...]:
    """The ways a user is involved in an order: they reported it, are assigned to it, or their
    report was merged into it.

    The merged orders are an uncorrelated id list: on PostgreSQL ``id = ANY(ARRAY(...))``, which
    joins the reporter and assignee indexes in one bitmap (a correlated EXISTS would be checked
    row by row); on SQLite ``id IN (...)``."""
    merged = select(AlsoReportedRow.order_id).where(AlsoReportedRow.user_id == user_id)
    merged_into = (
        WorkOrderRow.id == any_(func.array(merged.scalar_subquery()))
        if postgres
        else WorkOrderRow.id.in_(merged)
    )
    return WorkOrderRow.reporter == user_id, WorkOrderRow.assignee == user_id, merged_into


def _involving(user_id: str, postgres: bool) -> ColumnElement[bool]:
    """The user is involved in the order in any of the ways of ``_involvement``."""
    return or_(*_involvement(user_id, postgres))


def _same(column: InstrumentedAttribute[str | None], value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _overdue(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(WorkOrderRow.status == "open", WorkOrderRow.due_accept_at < now),
        and_(WorkOrderRow.status.in_(ACTIVE_STATUSES), WorkOrderRow.due_resolve_at < now),
    )


def _escalation_due(level: int, now: datetime) -> ColumnElement[bool]:
    """Level 1: still open past ``due_accept_at``; level 2: still active past
    ``due_resolve_at``."""
    if level == 1:
        return and_(WorkOrderRow.status == "open", WorkOrderRow.due_accept_at <= now)
    return and_(WorkOrderRow.status.in_(ACTIVE_STATUSES), WorkOrderRow.due_resolve_at <= now)


def _seen_by(user_id: str, teams: frozenset[str], *, postgres: bool) -> ColumnElement[bool]:
    """What one user may see: their teams' orders and those they are involved in."""
    seen = _involving(user_id, postgres)
    return or_(WorkOrderRow.team.in_(sorted(teams)), seen) if teams else seen


def _pattern(text: str) -> str:
    return "%" + _escape_like(text.strip().casefold()) + "%"


def _text_matches(text: str, limit: int) -> Select[Any]:
    """Ids of the orders whose alarm's location or description, or whose number, contains
    ``text`` (lower-cased), at most ``limit``: one id list per table, which the trigram
    indexes build without reading the orders that do not match."""
    pattern = _pattern(text)
    described = select(AlarmRow.id).where(
        or_(
            func.lower(AlarmRow.location).like(pattern, escape="\\"),
            func.lower(AlarmRow.description).like(pattern, escape="\\"),
        )
    )
    by_alarm = select(WorkOrderRow.id).where(WorkOrderRow.alarm_id.in_(described))
    by_number = select(WorkOrderRow.id).where(
        func.lower(WorkOrderRow.number).like(pattern, escape="\\")
    )
    matched = union(by_alarm, by_number).subquery("matched")
    return select(matched.c.id).limit(limit)


def _filtered(
    query: OrderQuery,
    *,
    postgres: bool,
    first: int,
    text_ids: Sequence[int] | None = None,
    created_ids: ColumnElement[bool] | None = None,
) -> Select[WorkOrderRow]:
    """``query`` as a statement, newest first, exact for its ``first`` rows (offset and
    limit within them); ``text_ids``: the orders matching its text, found beforehand (else
    the text is matched row by row); ``created_ids``: a condition on ``id`` that every order
    of its created range meets (``_created_ids``)."""
    statement = select(WorkOrderRow)
    if query.statuses:
        statement = statement.where(WorkOrderRow.status.in_(query.statuses))
    for column, value in (
        (WorkOrderRow.team, query.team),
        (WorkOrderRow.assignee, query.assignee),
        (WorkOrderRow.reporter, query.reporter),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.numbers:
        statement = statement.where(WorkOrderRow.number.in_(query.numbers))
    scan_text = query.text is not None and text_ids is None
    if query.alarm_type is not None or query.alarm_types or scan_text:
        statement = statement.join(WorkOrderRow.alarm)
    if query.alarm_type is not None:
        statement = statement.where(AlarmRow.alarm_type == query.alarm_type)
    if query.alarm_types:
        statement = statement.where(AlarmRow.alarm_type.in_(query.alarm_types))
    if query.created_from is not None:
        statement = statement.where(WorkOrderRow.created_at >= query.created_from)
    if query.created_to is not None:
        statement = statement.where(WorkOrderRow.created_at < query.created_to)
    if created_ids is not None:
        statement = statement.where(created_ids)
    if text_ids is not None:
        statement = statement.where(WorkOrderRow.id.in_(text_ids))
    elif query.text is not None:
        pattern = _pattern(query.text)
        statement = statement.where(
            or_(
                func.lower(AlarmRow.location).like(pattern, escape="\\"),
                func.lower(AlarmRow.description).like(pattern, escape="\\"),
                func.lower(WorkOrderRow.number).like(pattern, escape="\\"),
            )
        )
    if query.overdue_at is not None:
        statement = statement.where(_overdue(query.overdue_at))
    if query.after_id is not None:
        statement = statement.where(WorkOrderRow.id < query.after_id)
    involved, seen = _scope(query)
    if seen is not None:
        statement = statement.where(_seen_by(*seen, postgres=postgres))
    statement = statement.order_by(WorkOrderRow.id.desc())
    if involved is None:
        return statement
    # the newest ``first`` of each way of being involved, merged: each a backward scan of
    # its own index (reporter, assignee, id) that stops early, where their OR is a bitmap of
    # every order of the user's, read and sorted
    ids = union_all(
        *(
            select(statement.with_only_columns(WorkOrderRow.id).where(way).limit(first).subquery())
            for way in _involvement(involved, postgres)
        )
    ).subquery("involved")
    newest = select(WorkOrderRow).where(WorkOrderRow.id.in_(select(ids.c.id)))
    return newest.order_by(WorkOrderRow.id.desc())


def _scope(query: OrderQuery) -> tuple[str | None, tuple[str, frozenset[str]] | None]:
    """Who the query limits the orders to: the user they must involve (``involving``, or a
    viewer who sees no team's orders here) and the visibility left to check.

    A ``team`` filter settles the visibility's team branch: every order of a team of the
    viewer's is seen, of another team only those the viewer is involved in."""
    involved, seen = query.involving, query.visible_to
    if seen is not None and query.team is not None:
        user_id, teams = seen
        seen = None if query.team in teams else (user_id, frozenset())
    if seen is not None and not seen[1] and involved in (None, seen[0]):
        return seen[0], None
    return involved, seen


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlOrderRepository:
    """Alarms and work orders in SQLite (default) or PostgreSQL, schema kept by Alembic.

    Build it with ``await SqlOrderRepository.connect(url)``, which migrates the schema to
    head; close it with ``await repo.aclose()``.
    """

    def __init__(
        self, engine: AsyncEngine, *, where: str, enqueue: Enqueue, clock: Clock = time.time
    ) -> None:
        self._engine = engine
        self._enqueue = enqueue
        self._where = where
        self._clock = clock
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer(engine), expire_on_commit=False)
        self._upsert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._postgres = engine.dialect.name == "postgresql"
        self._trigrams = False  # the text search indexes exist (known after ``migrate``)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        enqueue: Enqueue = enqueue_outbox,
        clock: Clock = time.time,
        connect_timeout: float = 10.0,
    ) -> SqlOrderRepository:
        """Open the database at ``url`` and bring its schema to head.

        ``enqueue`` writes outbox messages into a transaction (the outbox's, in the same
        database). Raises ``ConfigurationError`` for a URL that cannot work,
        ``StoreUnavailable`` when the database cannot be reached.
        """
        parsed = parse_url(url)
        engine = create_orders_engine(parsed, connect_timeout=connect_timeout)
        repository = cls(engine, where=safe_url(parsed), enqueue=enqueue, clock=clock)
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
            if self._engine.dialect.name == "postgresql":
                async with self._engine.connect() as connection:
                    found = await connection.scalar(
                        select(func.count())
                        .select_from(text("pg_indexes"))
                        .where(
                            text("indexname = ANY(:names)").bindparams(names=list(SEARCH_INDEXES))
                        )
                    )
                self._trigrams = found == len(SEARCH_INDEXES)

    @property
    def engine(self) -> AsyncEngine:
        """The database engine, shared with stores on the same database (the outbox)."""
        return self._engine

    # -- the port --------------------------------------------------------------------------

    async def create(
        self,
        report: NewReport,
        *,
        routing: Routing | None = None,
        announce: Announce = no_announcements,
    ) -> Order:
        """Create an alarm and its open work order (routed to ``routing``'s team, a member
        picked in turn when it rotates), logging ``created`` (and ``assigned``)."""
        for field in ("reporter", "alarm_type", "source"):
            _check(field, getattr(report, field))
        _check("assignee", report.assignee, required=False)
        _check_report_photos(report)
        _check_message(report.message)
        if report.confidence is not None and not math.isfinite(report.confidence):
            raise InvalidInput("confidence must be a finite number")
        for name in ("latitude", "longitude"):
            value = getattr(report, name)
            if value is not None and not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number")
        try:
            return await self._create(report, routing, announce)
        except _MessageSeen as seen:
            return await self._replay("create", seen.message)

    async def _create(
        self, report: NewReport, routing: Routing | None, announce: Announce
    ) -> Order:
        now = self._now()
        day = day_key(now)
        async with self._write("creating a work order") as session:
            if report.message is not None:
                found = await self._source(session, report.message)
                if found is not None:
                    return _replayed("create", report.message, *found)
            sequence = await self._next_sequence(session, day)
            assignee = report.assignee
            if assignee is None and routing is not None and routing.rotation:
                turn = await self._next_turn(session, routing.team)
                assignee = routing.rotation[(turn - 1) % len(routing.rotation)]
            alarm = AlarmRow(
                alarm_type=report.alarm_type,
                description=report.description,
                confidence=report.confidence,
                image_key=report.image_key,
                location=report.location,
                reporter=report.reporter,
                source=report.source,
                created_at=now,
                latitude=report.latitude,
                longitude=report.longitude,
                location_key=location_key(report.location),
                photos=[
                    AlarmPhotoRow(position=i, image_key=key, added_by=report.reporter, at=now)
                    for i, key in enumerate(report.more_image_keys, 1)
                ],
            )
            row = WorkOrderRow(
                number=format_number(day, sequence),
                alarm=alarm,
                alarm_type=report.alarm_type,
                location=report.location,
                status="open",
                reporter=report.reporter,
                assignee=assignee,
                forced=False,
                created_at=now,
                team=routing.team if routing is not None else None,
                due_accept_at=routing.due_accept_at if routing is not None else None,
                due_resolve_at=routing.due_resolve_at if routing is not None else None,
                escalation=0,
                also_reported=[],
            )
            session.add(row)
            await session.flush()
            detail = f"{report.alarm_type} @ {report.location} (source: {report.source})"
            if row.team is not None:
                detail += f", team {row.team}"
            created = self._event(session, row, "created", report.reporter, detail, now)
            if assignee is not None:
                self._event(session, row, "assigned", "system", assignee, now)
            await self._add_source(session, report.message, "create", row.id, now)
            order = _to_order(row)
            self._enqueue(session, *announce(order, created), now=now)
            return order

    async def merge(
        self, number: str, report: NewReport, *, announce: Announce = no_announcements
    ) -> Order:
        """Merge ``report`` into the active order ``number`` (see the port)."""
        _check("reporter", report.reporter)
        _check_report_photos(report)
        _check_message(report.message)
        try:
            return await self._merge(number, report, announce)
        except _MessageSeen as seen:
            return await self._replay("merge", seen.message)

    async def _merge(self, number: str, report: NewReport, announce: Announce) -> Order:
        now = self._now()
        wanted = normalize_number(number)
        # a no-op update that only matches an active order: it takes the row's lock until
        # commit, so a close or reject racing this merge happens wholly before or after it
        touch = (
            update(WorkOrderRow)
            .where(WorkOrderRow.number == wanted, WorkOrderRow.status.in_(ACTIVE_STATUSES))
            .values(status=WorkOrderRow.status)
            .returning(WorkOrderRow.id)
            .execution_options(synchronize_session=False)
        )
        async with self._write("merging a report into a work order") as session:
            if report.message is not None:
                found = await self._source(session, report.message)
                if found is not None:
                    return _replayed("merge", report.message, *found)
            order_id = (await session.execute(touch)).scalar_one_or_none()
            row = await self._find(session, wanted)
            if order_id is None:
                raise OrderStateConflict(
                    f"work order {row.number} is {row.status}; a report cannot be merged into it",
                    status=row.status,
                )
            merged = report.reporter
            if merged != row.reporter and merged not in {a.user_id for a in row.also_reported}:
                session.add(AlsoReportedRow(order_id=row.id, user_id=merged))
            alarm = row.alarm
            kept = len(alarm.photos) + (1 if alarm.image_key else 0)
            kept_keys = report.image_keys[: max(0, MAX_ORDER_PHOTOS - kept)]
            added = list(kept_keys)
            if added and alarm.image_key is None:
                alarm.image_key = added.pop(0)
            position = max((p.position for p in alarm.photos), default=0)
            for offset, key in enumerate(added, 1):
                session.add(
                    AlarmPhotoRow(
                        alarm_id=alarm.id, position=position + offset, image_key=key,
                        added_by=merged, at=now,
                    )
                )  # fmt: skip
            await session.flush()
            await self._add_source(session, report.message, "merge", row.id, now)
            detail = (
                f"report of {merged} merged: {len(kept_keys)} of "
                f"{len(report.image_keys)} photo(s) kept"
            )
            row = await self._find(session, wanted)
            event = self._event(session, row, "merged_report", merged, detail, now)
            order = _to_order(row)
            self._enqueue(session, *announce(order, event), now=now)
            return order

    async def duplicates(self, query: DuplicateQuery) -> Sequence[Order]:
        """Candidates for a duplicate, newest first (see the port)."""
        if not 1 <= query.limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        # each branch names the type, so each is one range of its own index (type and folded
        # text; type and latitude) and the database reads only the rows near the report
        same_type = AlarmRow.alarm_type == query.alarm_type
        near: list[ColumnElement[bool]] = []
        if query.location_key:
            near.append(and_(same_type, AlarmRow.location_key == query.location_key))
        box = query.box
        if box is not None:
            inside = [same_type, AlarmRow.latitude.between(box.south, box.north)]
            if not box.wraps():
                inside.append(AlarmRow.longitude.between(box.west, box.east))
            near.append(and_(*inside, AlarmRow.longitude.is_not(None)))
        if not near:
            return []
        # Two small queries, each led by an index whatever the planner knows of the data: the
        # recent alarms near the report (one union branch per index), then their orders (by
        # ``alarm_id``); the newest ``MAX_DUPLICATE_ALARMS`` alarms at most.
        since = AlarmRow.created_at >= query.since
        branches = [select(AlarmRow.id).where(branch, since) for branch in near]
        found = union(*branches) if len(branches) > 1 else branches[0]
        alarms = select(found.subquery().c.id).order_by(text("id DESC")).limit(MAX_DUPLICATE_ALARMS)
        async with self._read("looking for duplicate work orders") as session:
            alarm_ids = list((await session.scalars(alarms)).all())
            if not alarm_ids:
                return []
            # the status is checked here, not in SQL, so that ``alarm_id`` leads the lookup
            pairs = await session.execute(
                select(WorkOrderRow.id, WorkOrderRow.status).where(
                    WorkOrderRow.alarm_id.in_(alarm_ids)
                )
            )
            active = sorted((i for i, status in pairs if status in ACTIVE_STATUSES), reverse=True)
            if not active:
                return []
            statement = (
                select(WorkOrderRow)
                .where(WorkOrderRow.id.in_(active[: query.limit]))
                .order_by(WorkOrderRow.id.desc())
            )
            return [_to_order(row) for row in (await session.scalars(statement)).all()]

    async def apply(self, change: OrderChange, *, announce: Announce) -> Order | None:
        """Apply ``change`` and log its event, if the order still has the status, team and
        assignee of ``change.seen``; None (nothing written) if it changed meanwhile. With
        ``change.message`` (a close), the order that message closed if there is one."""
        if change.message is not None and change.kind != "closed":
            raise InvalidInput("only a close is keyed by its message")
        _check_message(change.message)
        try:
            return await self._apply(change, announce)
        except _MessageSeen as seen:
            return await self._replay("close", seen.message)

    async def _apply(self, change: OrderChange, announce: Announce) -> Order | None:
        seen = change.seen
        _check("actor", change.actor)
        for field in ("assignee", "closed_by"):
            value = change.fields.get(field)
            _check(field, value if isinstance(value, str) else None, required=False)
        _check("close_image_key", change.fields.get("close_image_key"), required=False)
        team = change.fields.get("team")
        if team is not None and len(team) > TEAM_ID_LENGTH:
            raise InvalidInput(f"team is longer than {TEAM_ID_LENGTH} characters")
        now = self._now()
        statement = (
            update(WorkOrderRow)
            .where(
                WorkOrderRow.number == seen.number,
                WorkOrderRow.status == seen.status,
                _same(WorkOrderRow.team, seen.team),
                _same(WorkOrderRow.assignee, seen.assignee),
            )
            .values(**change.fields)
            .returning(WorkOrderRow.id)
            .execution_options(synchronize_session=False)
        )
        async with self._write(f"changing a work order ({change.kind})") as session:
            if change.message is not None:
                found = await self._source(session, change.message)
                if found is not None:
                    return _replayed("close", change.message, *found)
            changed_id = (await session.execute(statement)).scalar_one_or_none()
            if changed_id is None:
                return None
            await self._add_source(session, change.message, "close", changed_id, now)
            row = await self._find(session, seen.number)
            event = self._event(session, row, change.kind, change.actor, change.detail, now)
            order = _to_order(row)
            self._enqueue(session, *announce(order, event), now=now)
            return order

    async def escalate(
        self, number: str, *, level: int, now: datetime, announce: Announce
    ) -> Order | None:
        """Raise the order's escalation to ``level`` if it is below it and the deadline of
        the level has passed while the order still qualifies (level 1: open past
        ``due_accept_at``; level 2: open or accepted past ``due_resolve_at``); else None.
        Level 2 first takes level 1 if that is due and was not taken: both happen, in order."""
        if level not in (1, 2):
            raise InvalidInput("escalation level must be 1 or 2")
        wanted = normalize_number(number)
        changed: Order | None = None
        async with self._write("escalating a work order") as session:
            for step in range(1, level + 1):
                statement = (
                    update(WorkOrderRow)
                    .where(
                        WorkOrderRow.number == wanted,
                        WorkOrderRow.escalation < step,
                        _escalation_due(step, now),
                    )
                    .values(escalation=step)
                    .returning(WorkOrderRow.id)
                    .execution_options(synchronize_session=False)
                )
                if (await session.execute(statement)).scalar_one_or_none() is None:
                    continue
                row = await self._find(session, wanted)
                event = self._event(session, row, "escalated", "system", f"level {step}", now)
                changed = _to_order(row)
                self._enqueue(session, *announce(changed, event), now=now)
        return changed

    async def record_event(
        self,
        number: str,
        *,
        kind: EventKind,
        actor: str,
        detail: str,
        announce: Announce = no_announcements,
    ) -> Order:
        """Append to an order's event log without changing it (a comment, a close photo
        that was not accepted)."""
        _check("kind", kind)
        _check("actor", actor)
        now = self._now()
        async with self._write("recording a work order event") as session:
            row = await self._find(session, number)
            event = self._event(session, row, kind, actor, detail, now)
            order = _to_order(row)
            self._enqueue(session, *announce(order, event), now=now)
            return order

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
        """Orders newest first; ``user_id`` matches the reporter, the assignee or a merged
        reporter."""
        query = OrderQuery(statuses=(status,) if status else (), involving=user_id)
        return (await self.page(query, limit=limit)).orders

    async def page(self, query: OrderQuery, *, limit: int = 100) -> OrderPage:
        """Orders matching ``query``, newest first, at most ``limit``."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        unknown = set(query.statuses) - set(ORDER_STATUSES)
        if unknown:
            raise InvalidInput(f"unknown order status {sorted(unknown)[0]!r}")
        if not 0 <= query.offset <= MAX_OFFSET:
            raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}")
        if len(query.numbers) > MAX_LIST_LIMIT or len(query.alarm_types) > MAX_LIST_LIMIT:
            raise InvalidInput(f"at most {MAX_LIST_LIMIT} numbers or alarm types at once")
        async with self._read("listing work orders") as session:
            text_ids = await self._few_text_matches(session, query.text)
            created_ids = await self._created_ids(session, query)
            first = query.offset + limit + 1
            statement = _filtered(
                query,
                postgres=self._postgres,
                first=first,
                text_ids=text_ids,
                created_ids=created_ids,
            )
            statement = statement.offset(query.offset).limit(limit + 1)
            rows = list((await session.scalars(statement)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return OrderPage(
            orders=[_to_order(row) for row in rows],
            next_cursor=str(rows[-1].id) if more and rows else None,
        )

    async def _few_text_matches(
        self, session: AsyncSession, text: str | None
    ) -> Sequence[int] | None:
        """The ids of every order matching ``text`` when the trigram indexes can find them and
        they are few (then a page is sorted from them); None when there is no text, the
        indexes are missing, the text is shorter than a trigram, or many orders match (then
        the newest-first scan fills a page sooner). Either way the same orders match."""
        if text is None or not self._trigrams or len(text.strip()) < TRIGRAM:
            return None
        statement = _text_matches(text, FEW_TEXT_MATCHES + 1)
        ids = [int(found) for found in (await session.scalars(statement)).all()]
        return ids if len(ids) <= FEW_TEXT_MATCHES else None

    async def _created_ids(
        self, session: AsyncSession, query: OrderQuery
    ) -> ColumnElement[bool] | None:
        """For a created range that ended longer ago than it lasted: the ids of its orders
        as an id range, read from the (created_at, id) index (one pass over the range's
        entries, not the orders). Every order of the range has an id in it, whatever the
        order of ids and creation times, so adding it changes no answer; it lets a page be a
        backward scan of an (…, id) index from the range's newest id instead of from the
        newest order down (the planner cannot know that ids follow creation times). None for
        an open range or one reaching closer to now than it is long: scanning from the newest
        order reaches it sooner."""
        start, end = query.created_from, query.created_to
        if start is None or end is None or end - start >= self._now() - end:
            return None
        in_range = and_(WorkOrderRow.created_at >= start, WorkOrderRow.created_at < end)
        # count(*) also keeps PostgreSQL from finding min and max by two primary-key scans
        # filtered on created_at (its min/max shortcut), the slow path this avoids
        statement = select(
            func.min(WorkOrderRow.id), func.max(WorkOrderRow.id), func.count()
        ).where(in_range)
        low, high, count = (await session.execute(statement)).one()
        return WorkOrderRow.id.between(low, high) if count else false()

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        """Open and accepted orders the user reported or is assigned to, newest first."""
        statement = (
            select(WorkOrderRow)
            .where(
                WorkOrderRow.status.in_(ACTIVE_STATUSES),
                or_(WorkOrderRow.reporter == user_id, WorkOrderRow.assignee == user_id),
            )
            .order_by(WorkOrderRow.id.desc())
        )
        async with self._read("listing open work orders") as session:
            return [_to_order(row) for row in (await session.scalars(statement)).all()]

    async def stats(self, query: StatsQuery) -> Sequence[StatsGroup]:
        """The figures of ``query``'s groups (``orders.stats``: one GROUP BY per family)."""
        if query.group_by == "day" and not 1 <= len(query.days) <= stats_sql.MAX_DAYS:
            raise InvalidInput(f"a day grouping spans 1 to {stats_sql.MAX_DAYS} days")
        if not 1 <= query.limit <= stats_sql.MAX_LOCATIONS:
            raise InvalidInput(f"limit must be between 1 and {stats_sql.MAX_LOCATIONS}")
        dialect = self._engine.dialect.name
        involving = partial(_involving, postgres=self._postgres)
        statements = stats_sql.counts(query, involving, dialect)
        if dialect != "postgresql":
            statements += [stats_sql.median(query, involving, name) for name in stats_sql.MEDIANS]
        if query.group_by == "day":
            statements.append(stats_sql.daily_backlog(query, involving, dialect))
        answers = [*await self._figures(statements, dialect)]
        parts = answers.pop() if query.group_by == "day" else None
        counted: Sequence[Any]
        if dialect == "postgresql":
            counted = [row for answer in answers for row in answer]
            medians = [
                {row.key: getattr(row, name) for row in counted} for name in stats_sql.MEDIANS
            ]
        else:
            counted, by_median = answers[0], answers[1:]
            medians = [{row.key: row.median for row in answer} for answer in by_median]
        backlog = None if parts is None else stats_sql.running_backlog(query, counted, parts)
        return stats_sql.merge(query, counted, medians[0], medians[1], backlog)

    async def _figures(
        self, statements: Sequence[Select[Any]], dialect: str
    ) -> Sequence[Sequence[Any]]:
        """The rows of each of the figures' ``statements``. On PostgreSQL each in its own read
        transaction, all at once (a statement runs on one core: a year's figures take about
        half as long on two); each part is consistent in itself, and a change committed while
        they run may be seen by some parts and not by others (the connections run them without
        parallel workers of their own: ``POSTGRES_SETTINGS``). SQLite reads them in one
        transaction, one after the other."""

        async def read(batch: Sequence[Select[Any]]) -> Sequence[Sequence[Any]]:
            async with self._read("computing order figures") as session:
                return [(await session.execute(statement)).all() for statement in batch]

        if dialect != "postgresql":
            return await read(statements)
        # every part ends before the request does; the first failure is the request's
        answers = await asyncio.gather(
            *(read([statement]) for statement in statements), return_exceptions=True
        )
        failed = [answer for answer in answers if isinstance(answer, BaseException)]
        if failed:
            raise failed[0]
        return [rows for [rows] in cast(list[Sequence[Sequence[Any]]], answers)]

    async def has_image(self, user_id: str, key: str) -> bool:
        """Whether ``key`` is the report or close photo of an order the user reported, is
        assigned to or was merged into."""
        further = select(AlarmPhotoRow.id).where(
            AlarmPhotoRow.alarm_id == AlarmRow.id, AlarmPhotoRow.image_key == key
        )
        query = (
            select(WorkOrderRow.id)
            .join(AlarmRow, WorkOrderRow.alarm_id == AlarmRow.id)
            .where(
                _involving(user_id, self._postgres),
                or_(
                    AlarmRow.image_key == key,
                    WorkOrderRow.close_image_key == key,
                    further.exists(),
                ),
            )
            .limit(1)
        )
        async with self._read("looking up a photo") as session:
            return (await session.scalar(query)) is not None

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        """What the message did (``create`` or ``close``) and that order as it is now; None if
        it wrote nothing."""
        _check_message(message)
        async with self._read("reading a message's work order") as session:
            found = await self._source(session, message)
        if found is None:
            return None
        return _action(found[0]), _to_order(found[1])

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

    async def last_changed(self, numbers: Sequence[str]) -> Mapping[str, datetime]:
        """When each of these orders last changed (the time of its newest event), by number;
        unknown numbers are left out."""
        if len(numbers) > MAX_LIST_LIMIT:
            raise InvalidInput(f"at most {MAX_LIST_LIMIT} numbers at once")
        if not numbers:
            return {}
        latest = func.max(OrderEventRow.at)
        statement = (
            select(WorkOrderRow.number, latest)
            .join(OrderEventRow, OrderEventRow.order_id == WorkOrderRow.id)
            .where(WorkOrderRow.number.in_([normalize_number(n) for n in numbers]))
            .group_by(WorkOrderRow.number)
        )
        async with self._read("reading when work orders changed") as session:
            rows = (await session.execute(statement)).all()
        return {row[0]: row[1] for row in rows}

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
    def _event(
        session: AsyncSession,
        row: WorkOrderRow,
        kind: str,
        actor: str,
        detail: str,
        at: datetime,
    ) -> OrderEvent:
        session.add(OrderEventRow(order_id=row.id, kind=kind, actor=actor, detail=detail, at=at))
        return OrderEvent(order_number=row.number, kind=kind, actor=actor, detail=detail, at=at)

    async def _next_turn(self, session: AsyncSession, team: str) -> int:
        # like the day counter: the upsert locks the team's row until commit
        insert = self._upsert(TeamTurnRow).values(team=team, last=1)
        statement = insert.on_conflict_do_update(
            index_elements=[TeamTurnRow.team], set_={"last": TeamTurnRow.last + 1}
        ).returning(TeamTurnRow.last)
        turn: int = (await session.execute(statement)).scalar_one()
        return turn

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
