"""The dashboard's figures as SQL: one GROUP BY per figure family, on SQLite and PostgreSQL.

Every figure is computed by the database; Python only merges the answers by key. The orders
counted are those of ``StatsQuery`` (created in its range, visible to its user: two disjoint
parts added up), grouped by their creation day (local days, given as UTC bounds; in SQL a
day's position, named by ``merge``), alarm type, team or location (the order's copies of its
alarm's). Medians are
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
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.selectable import FromClause, Subquery

from snapreport.orders.base import ACTIVE_STATUSES, StatsGroup, StatsQuery
from snapreport.orders.tables import UTCDateTime, WorkOrderRow

Key = str | int | None  # a group's key: a day's position, a type, team or location
Involving = Callable[[str], ColumnElement[bool]]
Minutes = Callable[[Any, Any], ColumnElement[Any]]
MAX_DAYS: Final = 366
MAX_LOCATIONS: Final = 50
MEDIANS: Final = ("to_accept", "to_close")
# the statements a year's figures are split into on PostgreSQL, run at once (``counts``)
PARTS: Final = 2


def minutes_between(dialect: str) -> Minutes:
    """``later - earlier`` in minutes, in the dialect's own date arithmetic (on PostgreSQL
    ``date_part``, a float, rather than ``extract``, a numeric that is several times slower)."""
    if dialect == "postgresql":
        return lambda later, earlier: func.date_part("epoch", later - earlier) / 60.0
    return lambda later, earlier: cast(
        (func.julianday(later) - func.julianday(earlier)) * 1440.0, Float
    )


def _bins(query: StatsQuery, dialect: str) -> FromClause:
    """The days as rows (key: the day's position, start, end): on PostgreSQL ``unnest`` of
    three arrays (three parameters, one plan node, whatever the number of days); elsewhere a
    ``UNION ALL``."""
    if dialect == "postgresql":
        moment = postgresql.ARRAY(DateTime(timezone=True))
        return (
            func.unnest(
                literal(list(range(1, len(query.days) + 1)), postgresql.ARRAY(Integer())),
                literal([day.start for day in query.days], moment),
                literal([day.end for day in query.days], moment),
            )
            .table_valued("key", "start", "end")
            .render_derived("bins", with_types=False)
        )
    rows = [
        select(
            literal(position).label("key"),
            literal(day.start, UTCDateTime()).label("start"),
            literal(day.end, UTCDateTime()).label("end"),
        )
        for position, day in enumerate(query.days, 1)
    ]
    return union_all(*rows).subquery("bins")


def _by_day(column: InstrumentedAttribute[Any], query: StatsQuery, dialect: str) -> Select[Any]:
    """``SELECT key``: the position (1, 2, ...) among ``query.days`` of the day ``column``
    falls in, for the rows of the days' span (``merge`` names the days).

    On PostgreSQL in one pass: ``width_bucket`` finds the position of ``column`` among the
    days' starts (ascending, each day ending where the next starts, so the bucket is exactly the
    day ``start <= column < end``); an integer, so sorting and grouping by it is cheap. SQLite
    joins the days with a range."""
    o = WorkOrderRow
    first, last = query.days[0].start, query.days[-1].end
    if dialect == "postgresql":
        starts = literal(
            [day.start for day in query.days], postgresql.ARRAY(DateTime(timezone=True))
        )
        statement = select(func.width_bucket(column, starts).label("key")).select_from(o)
    else:
        bins = _bins(query, dialect)
        statement = select(bins.c.key).join_from(
            bins, o, and_(column >= bins.c.start, column < bins.c.end)
        )
    return statement.where(column >= first, column < last)


def _opened(query: StatsQuery) -> ColumnElement[bool]:
    """Counts towards the backlog from its creation day (``daily_backlog``)."""
    o = WorkOrderRow
    return and_(o.status != "rejected", or_(o.closed_at.is_(None), o.closed_at >= o.created_at))


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


def _visible(statement: Select[Any], query: StatsQuery, involving: Involving) -> list[Select[Any]]:
    """``statement`` restricted to the orders ``query.visible_to`` may see, as disjoint parts
    to be added up (``UNION ALL``): their teams' orders (a range of the (team, created_at)
    index), and the other orders they are involved in (reported, assigned, merged into: few).
    One ``team IN (...) OR involving`` would be one bitmap over all their orders instead."""
    if query.visible_to is None:
        return [statement]
    user, teams = query.visible_to
    if not teams:
        return [statement.where(involving(user))]
    o = WorkOrderRow
    ours = sorted(teams)
    return [
        statement.where(o.team.in_(ours)),
        statement.where(involving(user), or_(o.team.is_(None), o.team.not_in(ours))),
    ]


def _of_type(statement: Select[Any], query: StatsQuery) -> Select[Any]:
    """Only orders of ``query.alarm_type``, when it names one (the dashboard's per-day figures
    of each type)."""
    if query.alarm_type is None:
        return statement
    return statement.where(WorkOrderRow.alarm_type == query.alarm_type)


def _rows(statement: Select[Any], query: StatsQuery, involving: Involving) -> list[Select[Any]]:
    return [_of_type(part, query) for part in _visible(statement, query, involving)]


def cohort(query: StatsQuery, involving: Involving, keyed: Select[Any], dialect: str) -> Subquery:
    """One row per counted order: its group key (``keyed``'s ``key``) and what the figures
    need."""
    o = WorkOrderRow
    minutes = minutes_between(dialect)
    statement = keyed.add_columns(
        o.status.label("status"),
        minutes(o.accepted_at, o.created_at).label("to_accept"),
        case((o.status == "closed", minutes(o.closed_at, o.created_at)), else_=None).label(
            "to_close"
        ),
        case((_breached(query), 1), else_=0).label("breached"),
    ).where(o.created_at >= query.created_from, o.created_at < query.created_to)
    if query.group_by == "day":
        statement = statement.add_columns(case((_opened(query), 1), else_=0).label("opened"))
    parts = _rows(statement, query, involving)
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("cohort")


def _keyed(query: StatsQuery, dialect: str) -> Select[Any]:
    """``SELECT key``: the group of each order, for a ``GROUP BY``."""
    o = WorkOrderRow
    if query.group_by == "day":
        return _by_day(o.created_at, query, dialect)
    return select(getattr(o, query.group_by).label("key"))


def _figures(rows: Subquery, dialect: str) -> list[ColumnElement[Any]]:
    """created, closed, rejected, open now, breaches and, per day, the orders that open the
    day's backlog; on PostgreSQL also both medians (``percentile_cont`` skips NULLs), so the
    cohort is read once."""

    def having(*statuses: str) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((rows.c.status.in_(statuses), 1), else_=0)), 0)

    figures: list[ColumnElement[Any]] = [
        func.count().label("created"),
        having("closed").label("closed"),
        having("rejected").label("rejected"),
        having(*ACTIVE_STATUSES).label("open_now"),
        func.coalesce(func.sum(rows.c.breached), 0).label("sla_breaches"),
    ]
    if "opened" in rows.c:
        figures.append(func.coalesce(func.sum(rows.c.opened), 0).label("opened"))
    if dialect == "postgresql":
        figures += [
            func.percentile_cont(0.5).within_group(rows.c[name]).label(name) for name in MEDIANS
        ]
    return figures


def counts(query: StatsQuery, involving: Involving, dialect: str) -> list[Select[Any]]:
    """The figures per key (``_figures``), as statements whose rows together are the groups.

    On PostgreSQL the every-order day, team and type groupings are split into ``PARTS``
    statements over disjoint groups (every ``PARTS``-th day or value): each group's figures
    are computed whole in one of them, so the parts' rows are the groups, and the repository
    runs them at the same time on their own connections (one statement uses one core).

    On PostgreSQL a day, team or type grouping of every order (no ``visible_to``) aggregates
    each group in its own ``LATERAL`` subquery over its range of the (created_at), (team,
    created_at) or (alarm_type, created_at) index (``_each``): no sort of the range's rows by
    key, only each group's own medians' sorts (a ``GROUP BY`` of a year sorted half a million
    rows first). A caller's visible orders are few enough to sort, and per day their
    "involving" part would build its bitmap once a day: they keep the ``GROUP BY``, as does
    SQLite. A ``location`` grouping computes the figures of the ``limit`` places with most
    orders only (found first by a count per place: the medians of the thousands of others are
    never computed)."""
    o = WorkOrderRow
    if dialect == "postgresql" and query.visible_to is None and query.group_by == "day":
        bins = _bins(query, dialect)
        parts = [select(bins).where(bins.c.key % PARTS == part).subquery() for part in range(PARTS)]
        return [
            _each(
                query,
                involving,
                days,
                and_(o.created_at >= days.c.start, o.created_at < days.c.end),
            )
            for days in parts
        ]
    if dialect == "postgresql" and query.visible_to is None and query.group_by != "location":
        column = getattr(o, query.group_by)
        return [_per_value(query, involving, column, part) for part in range(PARTS)]
    rows = cohort(query, involving, _keyed(query, dialect), dialect)
    statement = select(rows.c.key, *_figures(rows, dialect)).group_by(rows.c.key)
    if query.group_by == "location":
        # the answer's order: most first, then by key as Python orders strings (code points)
        key = rows.c.key.collate("C") if dialect == "postgresql" else rows.c.key
        top = select(rows.c.key).group_by(rows.c.key).order_by(func.count().desc(), key)
        statement = statement.where(rows.c.key.in_(top.limit(query.limit)))
    return [statement]


def _each(
    query: StatsQuery, involving: Involving, keys: FromClause, within: ColumnElement[bool]
) -> Select[Any]:
    """PostgreSQL, every order: the figures of each of ``keys``' rows (``key``, ...) in its
    own ``LATERAL`` aggregate of the orders ``within`` it (a range of an index)."""
    rows = cohort(
        query,
        involving,
        select(keys.c.key).select_from(WorkOrderRow).where(within).correlate(keys),
        "postgresql",
    )
    each = select(*_figures(rows, "postgresql")).lateral("each")
    return select(keys.c.key, each).join_from(keys, each, true())


def _per_value(
    query: StatsQuery, involving: Involving, column: InstrumentedAttribute[Any], part: int
) -> Select[Any]:
    """PostgreSQL, every order, by team or type: ``_each`` over the values of ``column``
    (found by stepping through the (column, created_at) index, one probe per value), whose
    ranges that index holds, every ``PARTS``-th of them from the ``part``-th, and in part 0
    the orders without one; a value without orders in the range is left out, as in a
    ``GROUP BY``."""
    found = select(func.min(column).label("key")).cte("found", recursive=True)
    found = found.union_all(
        select(select(func.min(column)).where(column > found.c.key).scalar_subquery()).where(
            found.c.key.is_not(None)
        )
    )
    ranked = (
        select(found.c.key, func.row_number().over(order_by=found.c.key).label("rank"))
        .where(found.c.key.is_not(None))
        .subquery("ranked")
    )
    values = select(ranked.c.key).where(ranked.c.rank % PARTS == part).subquery("present")
    figures: list[Select[Any]] = [_each(query, involving, values, column == values.c.key)]
    if part == 0:
        none = cohort(
            query,
            involving,
            select(literal(None, String()).label("key")).where(column.is_(None)),
            "postgresql",
        )
        figures.append(select(literal(None, String()).label("key"), *_figures(none, "postgresql")))
    groups = (union_all(*figures) if len(figures) > 1 else figures[0]).subquery("groups")
    return select(groups).where(groups.c.created > 0)


def median(query: StatsQuery, involving: Involving, column: str) -> Select[Any]:
    """SQLite: the median of ``column`` per key, over the rows where it is known."""
    rows = cohort(query, involving, _keyed(query, "sqlite"), "sqlite")
    value = rows.c[column]
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


def daily_backlog(query: StatsQuery, involving: Involving, dialect: str) -> Select[Any]:
    """What the open backlog at the end of each day is made of, as rows (part, key, n).

    An order counts at the end ``e`` of a day when it was created before ``e`` and not closed
    by then (``closed_at`` NULL or ``>= e``), rejected orders left out. Such an order, created
    at ``c`` and closed at ``d >= c`` (or never), is +1 from the day ``c`` falls in and -1
    from the day ``d`` falls in; one with ``d < c`` never counts. So the backlog of day k is
    ``base`` (orders created before the first day and not closed before it) plus the running
    sum of ``opened - closed`` over the days up to k (``running_backlog`` adds them up). Each
    part is one indexed range (``created_at``, ``closed_at``), not a pass over every order per
    day. The orders opened in ``[created_from, created_to)`` are counted by ``counts`` (its
    ``opened``, in the same pass as the other figures); the parts here add those of the days'
    span outside it (a ``from``/``to`` that is not a local midnight; usually none).
    """
    o = WorkOrderRow
    first = literal(query.days[0].start, UTCDateTime())
    counted = o.status != "rejected"
    opened = [
        _by_day(o.created_at, query, dialect).where(_opened(query), outside)
        for outside in (o.created_at < query.created_from, o.created_at >= query.created_to)
    ]
    closed = _by_day(o.closed_at, query, dialect).where(counted, o.closed_at >= o.created_at)
    # created before the first day, not closed before it: still open, or closed later (two
    # ranges of the closed_at index rather than one OR that the planner would scan)
    base = [
        select(literal(None, Integer()).label("key"))
        .select_from(o)
        .where(counted, o.created_at < first, still)
        for still in (o.closed_at.is_(None), o.closed_at >= first)
    ]
    parts = [
        row.add_columns(literal(name).label("part"))
        for name, statements in (("opened", opened), ("closed", [closed]), ("base", base))
        for statement in statements
        for row in _rows(statement, query, involving)
    ]
    rows = union_all(*parts).subquery("parts")
    return select(rows.c.part, rows.c.key, func.count().label("n")).group_by(
        rows.c.part, rows.c.key
    )


def running_backlog(
    query: StatsQuery, counted: Sequence[Any], parts: Sequence[Any]
) -> dict[Key, int]:
    """The backlog at the end of each day (by position) from ``counts``' ``opened`` and
    ``daily_backlog``'s parts."""
    base = sum(int(row.n) for row in parts if row.part == "base")
    change = {row.key: int(row.opened) for row in counted}
    for row in parts:
        if row.part != "base":
            sign = 1 if row.part == "opened" else -1
            change[row.key] = change.get(row.key, 0) + sign * int(row.n)
    backlog: dict[Key, int] = {}
    for position in range(1, len(query.days) + 1):
        base += change.get(position, 0)
        backlog[position] = base
    return backlog


def merge(
    query: StatsQuery,
    counted: Sequence[Any],
    to_accept: Mapping[Key, float],
    to_close: Mapping[Key, float],
    backlog: Mapping[Key, int] | None,
) -> list[StatsGroup]:
    """The groups in the answer's order: every day of the range (zeros included) in order;
    other groupings the most created first (then by key), a ``location`` one cut to
    ``limit``. A day grouping's keys are the days' positions; the answer names the days."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(float(value), 1)

    def named(key: Key) -> str | None:
        return query.days[key - 1].key if isinstance(key, int) else key

    groups = {
        row.key: StatsGroup(
            key=named(row.key),
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
            groups.get(position, StatsGroup(key=day.key, open_backlog=daily.get(position, 0)))
            for position, day in enumerate(query.days, 1)
        ]
    ordered = sorted(groups.values(), key=lambda g: (-g.created, g.key is None, g.key or ""))
    return ordered[: query.limit] if query.group_by == "location" else ordered
