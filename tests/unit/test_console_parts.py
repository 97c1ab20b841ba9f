"""The console's pure parts: local day bins (daylight saving included), the time zone setting,
live events on the wire, and the stream hub's bounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from snapreport.channels.http.stats import day_bins, parse_bound
from snapreport.config import Settings
from snapreport.errors import InvalidInput, TooManyStreams
from snapreport.live.base import Hub, LiveEvent


def test_days_are_local_and_a_daylight_saving_day_is_25_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = parse_bound("from", "2026-10-24", berlin)
    end = parse_bound("to", "2026-10-27", berlin)
    bins = day_bins(start, end, berlin)
    assert [b.key for b in bins] == ["2026-10-24", "2026-10-25", "2026-10-26"]
    hours = [(b.end.astimezone(UTC) - b.start.astimezone(UTC)) / timedelta(hours=1) for b in bins]
    assert hours == [24, 25, 24]
    assert bins[0].start.astimezone(UTC) == datetime(2026, 10, 23, 22, tzinfo=UTC)


def test_shanghai_days_start_at_16_utc() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    bins = day_bins(
        parse_bound("from", "2026-11-01", zone), parse_bound("to", "2026-11-02", zone), zone
    )
    assert [(b.key, b.start.astimezone(UTC).hour) for b in bins] == [("2026-11-01", 16)]


def test_a_bound_needs_a_zone_or_a_date() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    with pytest.raises(InvalidInput, match="time zone"):
        parse_bound("from", "2026-11-01T00:00:00", zone)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        parse_bound("to", "tomorrow", zone)


def test_an_unknown_time_zone_is_refused_when_loaded() -> None:
    with pytest.raises(ValidationError, match="SNAPREPORT_TIMEZONE"):
        Settings.model_validate({"timezone": "Mars/Olympus"})
    assert Settings.model_validate({}).timezone == "Asia/Shanghai"


def test_live_events_round_trip_and_garbage_is_refused() -> None:
    event = LiveEvent("order.created", {"number": "WO-1", "location": "A区"})
    assert LiveEvent.decode(event.encode()) == event
    for bad in (b"not json", b"[]", b'{"type": 1, "order": {}}', b'{"type": "x"}'):
        with pytest.raises(InvalidInput):
            LiveEvent.decode(bad)
    with pytest.raises(InvalidInput, match="too large"):
        LiveEvent.decode(b" " * (256 * 1024 + 1))


async def test_the_hub_bounds_streams_and_ends_a_stream_that_falls_behind() -> None:
    hub = Hub(max_streams=2, max_queued=2)
    first, second = hub.open(), hub.open()
    with pytest.raises(TooManyStreams, match="MAX_STREAMS"):
        hub.open()
    hub.release(second)
    assert hub.open_streams == 1
    events = [LiveEvent(f"order.e{i}", {"number": str(i)}) for i in range(3)]
    for event in events:
        hub.deliver(event)
    assert first.lagging
    assert [await first.next(1) for _ in range(2)] == events[:2]
    assert first.closed
    assert await first.next(0.01) is None


async def test_closing_the_hub_ends_waiting_streams() -> None:
    hub = Hub(max_streams=1)
    stream = hub.open()
    waiting = asyncio.create_task(stream.next(10))
    hub.close_all()
    assert await waiting is None
    assert stream.closed
