"""An order as the API shows it: the one shape for HTTP answers and outbox payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from snapreport.orders.base import Order


def order_fields(order: Order) -> dict[str, Any]:
    """The order's public fields (datetimes as ``datetime``)."""
    return {
        "number": order.number,
        "status": order.status,
        "alarm_type": order.alarm_type,
        "location": order.location,
        "description": order.description,
        "reporter": order.reporter,
        "assignee": order.assignee,
        "team": order.team,
        "created_at": order.created_at,
        "accepted_at": order.accepted_at,
        "closed_at": order.closed_at,
        "close_verified": order.close_verified,
        "forced": order.forced,
        "closed_by": order.closed_by,
        "close_note": order.close_note,
        "image_key": order.image_key,
        "image_keys": list(order.image_keys),
        "close_image_key": order.close_image_key,
        "due_accept_at": order.due_accept_at,
        "due_resolve_at": order.due_resolve_at,
        "escalation": order.escalation,
        "latitude": order.latitude,
        "longitude": order.longitude,
        "reject_reason": order.reject_reason,
        "also_reported_by": list(order.also_reported_by),
    }


def order_json(order: Order) -> dict[str, Any]:
    """``order_fields`` ready for JSON: datetimes as ISO 8601 (UTC)."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in order_fields(order).items()
    }


def order_link(number: str) -> str:
    """The console page of an order (a path; the outbox prefixes ``PUBLIC_URL``)."""
    return f"/console/orders/{quote(number, safe='')}"
