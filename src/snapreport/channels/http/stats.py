"""``GET /api/v1/stats``: the console dashboard's figures, computed by the database.

Groups by local day (``SNAPREPORT_TIMEZONE``), alarm type, team or location (the most reported
first, at most ``limit``), over the orders the caller may see that were created in
``[from, to)``. ``from``/``to`` are dates (local midnight) or ISO 8601 times with a zone; by
default the 30 days up to the end of today. docs/console.md defines every figure.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.schemas import ErrorOut
from snapreport.channels.http.state import State
from snapreport.errors import InvalidInput
from snapreport.orders.base import DayBin, StatsQuery
from snapreport.orders.stats import MAX_DAYS, MAX_LOCATIONS

router = APIRouter(tags=["console"])
DEFAULT_DAYS = 30
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 422, 503)
}


class StatsGroupOut(BaseModel):
    key: str | None
    created: int
    closed: int
    rejected: int
    open_backlog: int
    median_minutes_to_accept: float | None
    median_minutes_to_close: float | None
    sla_breaches: int


class StatsOut(BaseModel):
    groups: list[StatsGroupOut]
    timezone: str


def parse_bound(name: str, text: str, zone: ZoneInfo) -> datetime:
    """A date (its local midnight) or an ISO 8601 time with a zone."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), zone)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date (2026-11-29) or an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. 2026-11-29T00:00:00+08:00)")
    return moment


def day_bins(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[DayBin, ...]:
    """The local days that ``[start, end)`` touches, each with its UTC bounds (a day of a
    daylight-saving change is 23 or 25 hours long)."""
    day = start.astimezone(zone).date()
    bins: list[DayBin] = []
    while datetime.combine(day, time(), zone) < end:
        if len(bins) >= MAX_DAYS:
            raise InvalidInput(f"a day grouping spans at most {MAX_DAYS} days")
        following = day + timedelta(days=1)
        bins.append(
            DayBin(
                day.isoformat(),
                datetime.combine(day, time(), zone),
                datetime.combine(following, time(), zone),
            )
        )
        day = following
    return tuple(bins)


@router.get("/api/v1/stats", response_model=StatsOut, responses=_ERRORS)
async def stats(
    state: State,
    caller: CurrentCaller,
    group_by: Literal["day", "alarm_type", "team", "location"] = "day",
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOCATIONS)] = 10,
    alarm_type: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> StatsOut:
    """Figures per group (``created``, ``closed``, ``rejected``, ``open_backlog``, the
    median minutes to accept and to close, ``sla_breaches``); ``limit`` cuts a ``location``
    grouping to the most reported places; ``alarm_type`` counts only that type's orders."""
    app = state.app
    zone = ZoneInfo(app.settings.timezone)
    now = app.dispatch.now()
    today = now.astimezone(zone).date()
    upper = (
        parse_bound("to", end, zone)
        if end is not None
        else datetime.combine(today + timedelta(days=1), time(), zone)
    )
    lower = (
        parse_bound("from", start, zone)
        if start is not None
        else upper - timedelta(days=DEFAULT_DAYS)
    )
    if lower >= upper:
        raise InvalidInput("from must be before to")
    if upper - lower > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"from and to may be at most {MAX_DAYS} days apart")
    query = StatsQuery(
        group_by=group_by,
        created_from=lower,
        created_to=upper,
        now=now,
        days=day_bins(lower, upper, zone) if group_by == "day" else (),
        limit=limit,
        alarm_type=alarm_type,
    )
    groups = await app.dispatch.stats(query, caller.roles)
    return StatsOut(
        groups=[
            StatsGroupOut(
                key=g.key,
                created=g.created,
                closed=g.closed,
                rejected=g.rejected,
                open_backlog=g.open_backlog,
                median_minutes_to_accept=g.median_minutes_to_accept,
                median_minutes_to_close=g.median_minutes_to_close,
                sla_breaches=g.sla_breaches,
            )
            for g in groups
        ],
        timezone=app.settings.timezone,
    )
