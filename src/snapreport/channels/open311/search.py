"""The filters of ``GET requests``: the specification's, and the ``page`` extension.

``service_request_id`` (a comma list) overrides every other filter. ``service_code`` and
``status`` take comma lists. The dates are ISO 8601 with a time zone (a bare date is
midnight UTC); without them the span is the last 90 days, and a span may not exceed 90 days.
``page`` (from 1) and ``page_size`` (1..1000, default 1000: the specification's first 1000)
page through the matches, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from snapreport.errors import InvalidInput
from snapreport.orders.base import OrderQuery, OrderStatus
from snapreport.orders.numbering import normalize_number

MAX_SPAN: Final = timedelta(days=90)
MAX_PAGE_SIZE: Final = 1000
MAX_PAGE: Final = 100
MAX_IDS: Final = 200
MAX_PARAM_CHARS: Final = 4000
STATUSES: Final[Mapping[str, tuple[OrderStatus, ...]]] = {
    "open": ("open", "accepted"),
    "closed": ("closed", "rejected"),
}


@dataclass(frozen=True, slots=True)
class Search:
    """A listing to run: its filters and how many to return."""

    query: OrderQuery
    limit: int


def _param(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_PARAM_CHARS:
        raise InvalidInput(f"{name} is longer than {MAX_PARAM_CHARS} characters")
    return value.strip()


def _items(value: str, name: str, limit: int) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if len(items) > limit:
        raise InvalidInput(f"{name} lists more than {limit} values")
    return items


def _number(params: Mapping[str, str], name: str, default: int, upper: int) -> int:
    value = _param(params, name)
    if value is None:
        return default
    if not value.isdecimal() or not 1 <= int(value) <= upper:
        raise InvalidInput(f"{name} must be a whole number from 1 to {upper}")
    return int(value)


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 date-time with a time zone (``Z`` or an offset), or a date (UTC)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be ISO 8601, e.g. 2010-01-01T00:00:00Z") from None
    if len(value) == 10:  # a bare date
        return moment.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (Z or an offset such as +08:00)")
    return moment.astimezone(UTC)


def parse(params: Mapping[str, str], now: datetime) -> Search:
    """The listing ``params`` ask for, as of ``now``."""
    page = _number(params, "page", 1, MAX_PAGE)
    size = _number(params, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = (page - 1) * size
    ids = _param(params, "service_request_id")
    if ids is not None:
        numbers = tuple(normalize_number(n) for n in _items(ids, "service_request_id", MAX_IDS))
        return Search(OrderQuery(numbers=numbers, offset=offset), size)
    codes = _param(params, "service_code")
    statuses: tuple[OrderStatus, ...] = ()
    wanted = _param(params, "status")
    if wanted is not None:
        for status in _items(wanted, "status", len(STATUSES)):
            if status not in STATUSES:
                raise InvalidInput(f"status must be open or closed, not {status!r}")
            statuses += STATUSES[status]
    start, end = _param(params, "start_date"), _param(params, "end_date")
    end_at = parse_time(end, "end_date") if end is not None else None
    start_at = parse_time(start, "start_date") if start is not None else None
    if start_at is None and end_at is None:
        start_at = now - MAX_SPAN
    elif start_at is None:
        assert end_at is not None
        start_at = end_at - MAX_SPAN
    elif end_at is None:
        end_at = start_at + MAX_SPAN
    if end_at is not None and end_at - start_at > MAX_SPAN:
        raise InvalidInput("start_date and end_date may not span more than 90 days")
    if end_at is not None and end_at < start_at:
        raise InvalidInput("end_date is before start_date")
    query = OrderQuery(
        statuses=statuses,
        alarm_types=_items(codes, "service_code", MAX_IDS) if codes is not None else (),
        created_from=start_at,
        # inclusive, as the specification's "latest datetime to include"
        created_to=end_at + timedelta(microseconds=1) if end_at is not None else None,
        offset=offset,
    )
    return Search(query, size)
