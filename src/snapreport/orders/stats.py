"""The dashboard's figures as SQL: one GROUP BY per figure family, on SQLite and PostgreSQL.

Every figure is computed by the database; Python only merges the answers by key. The orders
counted are those of ``StatsQuery`` (created in its range, visible to its user), grouped by
their creation day (local days, given as UTC bounds), alarm type, team or location. Medians are
``percentile_cont(0.5)`` on PostgreSQL; SQLite has no percentile function, so there the middle
row(s) of each group are picked with window functions (``ROW_NUMBER``/``COUNT`` over the group)
and averaged, which is the same value (the mean of the two middle values for an even count).
See docs/console.md for the definition of each figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.selectable import FromClause, Subquery

from snapreport.orders.base import ACTIVE_STATUSES, StatsGroup, StatsQuery
from snapreport.orders.tables import AlarmRow, UTCDateTime, WorkOrderRow

SeenBy = Callable[[str, frozenset[str]], ColumnElement[bool]]
Minutes = Callable[[Any, Any], ColumnElement[Any]]
MAX_DAYS: Final = 366
MAX_LOCATIONS: Final = 50
MEDIANS: Final = ("to_accept", "to_close")


def minutes_between(dialect: str) -> Minutes:
    """``later - earlier`` in minutes, in the dialect's own date arithmetic."""
    if dialect == "postgresql":
        return lambda later, earlier: cast(func.extract("epoch", later - earlier), Float) / 60.0
    return lambda later, earlier: cast(
        (func.julianday(later) - func.julianday(earlier)) * 1440.0, Float
    )


def _bins(query: StatsQuery, dialect: str) -> FromClause:
    """The days as rows (key, start, end): on PostgreSQL ``unnest`` of three arrays (three
    parameters, one plan node, whatever the number of days); elsewhere a ``UNION ALL``."""
    if dialect == "postgresql":
        moment = postgresql.ARRAY(DateTime(timezone=True))
        return (
            func.unnest(
                literal([day.key for day in query.days], postgresql.ARRAY(String())),
                literal([day.start for day in query.days], moment),
                literal([day.end for day in query.days], moment),
            )
            .table_valued("key", "start", "end")
            .render_derived("bins", with_types=False)
        )
    rows = [
        select(
            literal(day.key).label("key"),
            literal(day.start, UTCDateTime()).label("start"),
            literal(day.end, UTCDateTime()).label("end"),
        )
        for day in query.days
    ]
    return union_all(*rows).subquery("bins")


def _breached(query: StatsQuery) -> ColumnElement[bool]:
    """Missed a deadline: accepted (or closed, or still waiting now) after ``due_accept_at``,
    or closed (or still open now) after ``due_resolve_at``. Rejected orders never count."""
    now = literal(query.now, UTCDateTime())
    o = WorkOrderRow
    late_accept = and_(
        o.due_accept_at.is_not(None),
        func.coalesce(o.accepted_at, o.closed_at, now) > o.due_accept_at,
    )
    late_close = and_(
        o.due_resolve_at.is_not(None), func.coalesce(o.closed_at, now) > o.due_resolve_at
    )
    return and_(o.status != "rejected", or_(late_accept, late_close))


def cohort(query: StatsQuery, seen_by: SeenBy, dialect: str) -> Subquery:
    """One row per counted order: its group key and what the figures need."""
    o = WorkOrderRow
    minutes = minutes_between(dialect)
    if query.group_by == "day":
        bins = _bins(query, dialect)
        key: ColumnElement[Any] = bins.c.key
        statement: Select[Any] = select(key.label("key")).join_from(
            bins, o, and_(o.created_at >= bins.c.start, o.created_at < bins.c.end)
        )
    elif query.group_by == "team":
        statement = select(o.team.label("key")).select_from(o)
    else:
        column = AlarmRow.alarm_type if query.group_by == "alarm_type" else AlarmRow.location
        statement = select(column.label("key")).join_from(o, AlarmRow, o.alarm_id == AlarmRow.id)
    statement = statement.add_columns(
        o.status.label("status"),
        minutes(o.accepted_at, o.created_at).label("to_accept"),
        case((o.status == "closed", minutes(o.closed_at, o.created_at)), else_=None).label(
            "to_close"
        ),
        case((_breached(query), 1), else_=0).label("breached"),
    ).where(o.created_at >= query.created_from, o.created_at < query.created_to)
    if query.visible_to is not None:
        statement = statement.where(seen_by(*query.visible_to))
    return _of_type(statement, query).subquery("cohort")


def counts(rows: Subquery, dialect: str) -> Select[Any]:
    """created, closed, rejected, open now and breaches per key; on PostgreSQL also both
    medians (``percentile_cont`` skips NULLs), so the cohort is read once."""

    def having(*statuses: str) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((rows.c.status.in_(statuses), 1), else_=0)), 0)

    statement = select(
        rows.c.key,
        func.count().label("created"),
        having("closed").label("closed"),
        having("rejected").label("rejected"),
        having(*ACTIVE_STATUSES).label("open_now"),
        func.coalesce(func.sum(rows.c.breached), 0).label("sla_breaches"),
    ).group_by(rows.c.key)
    if dialect == "postgresql":
        statement = statement.add_columns(
            *(func.percentile_cont(0.5).within_group(rows.c[name]).label(name) for name in MEDIANS)
        )
    return statement


def median(rows: Subquery, column: str, dialect: str) -> Select[Any]:
    """The median of ``column`` per key, over the rows where it is known."""
    value = rows.c[column]
    if dialect == "postgresql":
        return (
            select(rows.c.key, func.percentile_cont(0.5).within_group(value).label("median"))
            .where(value.is_not(None))
            .group_by(rows.c.key)
        )
    ranked = (
        select(
            rows.c.key,
            value.label("value"),
            func.row_number().over(partition_by=rows.c.key, order_by=value).label("rank"),
            func.count().over(partition_by=rows.c.key).label("size"),
        )
        .where(value.is_not(None))
        .subquery("ranked")
    )
    size = ranked.c.size
    return (
        select(ranked.c.key, func.avg(ranked.c.value).label("median"))
        .where(ranked.c.rank.in_([(size + 1) // 2, (size + 2) // 2]))
        .group_by(ranked.c.key)
    )


def daily_backlog(query: StatsQuery, seen_by: SeenBy, dialect: str) -> Select[Any]:
    """What the open backlog at the end of each day is made of, as rows (part, key, n).

    An order counts at the end ``e`` of a day when it was created before ``e`` and not closed
    by then (``closed_at`` NULL or ``>= e``), rejected orders left out. Such an order, created
    at ``c`` and closed at ``d >= c`` (or never), is +1 from the day ``c`` falls in and -1
    from the day ``d`` falls in; one with ``d < c`` never counts. So the backlog of day k is
    ``base`` (orders created before the first day and not closed before it) plus the running
    sum of ``opened - closed`` over the days up to k (``running_backlog`` adds them up). Each
    part is one indexed range (``created_at``, ``closed_at``), not a pass over every order per
    day.
    """
    o = WorkOrderRow
    bins = _bins(query, dialect)
    first = literal(query.days[0].start, UTCDateTime())
    counted = o.status != "rejected"
    opened = (
        select(literal("opened").label("part"), bins.c.key, func.count().label("n"))
        .join_from(bins, o, and_(o.created_at >= bins.c.start, o.created_at < bins.c.end))
        .where(counted, or_(o.closed_at.is_(None), o.closed_at >= o.created_at))
        .group_by(bins.c.key)
    )
    closed = (
        select(literal("closed").label("part"), bins.c.key, func.count().label("n"))
        .join_from(bins, o, and_(o.closed_at >= bins.c.start, o.closed_at < bins.c.end))
        .where(counted, o.closed_at >= o.created_at)
        .group_by(bins.c.key)
    )
    # created before the first day, not closed before it: still open, or closed later (two
    # ranges of the closed_at index rather than one OR that the planner would scan)
    base = [
        select(
            literal("base").label("part"), literal(None, String()).label("key"), func.count()
        ).where(counted, o.created_at < first, still)
        for still in (o.closed_at.is_(None), o.closed_at >= first)
    ]
    parts = [opened, closed, *base]
    if query.visible_to is not None:
        seen = seen_by(*query.visible_to)
        parts = [part.where(seen) for part in parts]
    return union_all(*(_of_type(part, query) for part in parts))  # type: ignore[return-value]


def _of_type(statement: Select[Any], query: StatsQuery) -> Select[Any]:
    """Only orders of ``query.alarm_type``, when it names one (the dashboard's per-day figures
    of each type)."""
    if query.alarm_type is None:
        return statement
    o = WorkOrderRow
    of_type = select(AlarmRow.id).where(AlarmRow.alarm_type == query.alarm_type)
    return statement.where(o.alarm_id.in_(of_type))


def running_backlog(query: StatsQuery, parts: Sequence[Any]) -> dict[str | None, int]:
    """The backlog at the end of each day from ``daily_backlog``'s parts."""
    base = sum(int(row.n) for row in parts if row.part == "base")
    change: dict[str, int] = {}
    for row in parts:
        if row.part != "base":
            change[row.key] = change.get(row.key, 0) + (1 if row.part == "opened" else -1) * int(
                row.n
            )
    backlog: dict[str | None, int] = {}
    for day in query.days:
        base += change.get(day.key, 0)
        backlog[day.key] = base
    return backlog


def merge(
    query: StatsQuery,
    counted: Sequence[Any],
    to_accept: Mapping[str | None, float],
    to_close: Mapping[str | None, float],
    backlog: Mapping[str | None, int] | None,
) -> list[StatsGroup]:
    """The groups in the answer's order: every day of the range (zeros included) in order;
    other groupings the most created first (then by key), a ``location`` one cut to
    ``limit``."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(float(value), 1)

    groups = {
        row.key: StatsGroup(
            key=row.key,
            created=int(row.created),
            closed=int(row.closed),
            rejected=int(row.rejected),
            open_backlog=int(row.open_now) if backlog is None else backlog.get(row.key, 0),
            median_minutes_to_accept=rounded(to_accept.get(row.key)),
            median_minutes_to_close=rounded(to_close.get(row.key)),
            sla_breaches=int(row.sla_breaches),
        )
        for row in counted
    }
    if query.group_by == "day":
        daily = backlog or {}
        return [
            groups.get(day.key, StatsGroup(key=day.key, open_backlog=daily.get(day.key, 0)))
            for day in query.days
        ]
    ordered = sorted(groups.values(), key=lambda g: (-g.created, g.key is None, g.key or ""))
    return ordered[: query.limit] if query.group_by == "location" else ordered
