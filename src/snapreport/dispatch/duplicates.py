"""Duplicate reports (API.md Part 2): is a report about to be filed already an open order?

A candidate is an active (open or accepted) order of the same alarm type, filed within
``WINDOW`` (7 days), that is either within ``RADIUS_M`` (50 m, haversine) when both have
coordinates, or at the same normalised location text (``orders.places.location_key``). The
repository narrows by index (type and filing time; a latitude/longitude box around the point;
the folded text) and this module measures the exact distance. Of several candidates the nearest
wins, then the newest; one found by its text only counts as at distance 0 of its own kind, after
every one measured within the radius.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from snapreport.orders.base import DuplicateQuery, NewReport, Order, OrderRepository
from snapreport.orders.places import Box, distance_m, location_key

RADIUS_M: Final = 50.0
WINDOW: Final = timedelta(days=7)
MAX_CANDIDATES: Final = 50


async def find_duplicate(orders: OrderRepository, report: NewReport, now: datetime) -> Order | None:
    """The order ``report`` duplicates, or None (see module doc)."""
    key = location_key(report.location)
    here = _point(report.latitude, report.longitude)
    box = Box.around(*here, RADIUS_M) if here is not None else None
    if not key and box is None:
        return None
    query = DuplicateQuery(
        alarm_type=report.alarm_type,
        since=now - WINDOW,
        location_key=key,
        box=box,
        limit=MAX_CANDIDATES,
    )
    ranked: list[tuple[int, float, float, Order]] = []
    for order in await orders.duplicates(query):
        there = _point(order.latitude, order.longitude)
        if here is not None and there is not None:
            meters = distance_m(*here, *there)
            if meters <= RADIUS_M:
                ranked.append((0, meters, -order.created_at.timestamp(), order))
                continue
        if key and key == location_key(order.location):
            ranked.append((1, 0.0, -order.created_at.timestamp(), order))
    if not ranked:
        return None
    return min(ranked, key=lambda item: item[:3])[3]


def _point(latitude: float | None, longitude: float | None) -> tuple[float, float] | None:
    return None if latitude is None or longitude is None else (latitude, longitude)
