"""Orders and alarm types as the specification's ``request`` and ``service`` records.

Status: ``open`` and ``accepted`` are ``open``; ``closed`` and ``rejected`` are ``closed``,
with the close note or the reason for rejecting as ``status_notes``. Times are UTC, ISO 8601
with ``Z``. Fields snapreport does not keep (``address_id``, ``zipcode``) are present and
empty, as in the specification's examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from snapreport.channels.open311.documents import Node
from snapreport.dispatch.rules import Rules
from snapreport.orders.base import Order
from snapreport.workflow.texts import Texts

# how ``intake`` records a client's own media_url: the description's last line
MEDIA_URL_LINE: Final = "media_url: "
_RECORDED_URL: Final = re.compile(r"\n*" + re.escape(MEDIA_URL_LINE) + r"(\S+)\Z")


def w3_time(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z`` (the specification's w3 format), or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def team_name(rules: Rules, team_id: str | None) -> str | None:
    if team_id is None:
        return None
    team = rules.teams.get(team_id)
    return team.name if team is not None else team_id


def service_group(rules: Rules, alarm_type: str, fallback: str) -> str:
    """The team a report of ``alarm_type`` without a location would go to, else ``fallback``."""
    route = rules.route(alarm_type, "")
    return route.team.name if route is not None else fallback


def services(catalog: Sequence[str], rules: Rules, texts: Texts) -> list[Node]:
    """The alarm-type catalog as ``service`` records (the type's name is its code)."""
    records: list[Node] = []
    for alarm_type in catalog:
        group = service_group(rules, alarm_type, texts("open311.group_default"))
        keywords = ", ".join(dict.fromkeys((alarm_type, group)))
        records.append(
            {
                "service_code": alarm_type,
                "service_name": alarm_type,
                "description": texts("open311.service_description", alarm_type=alarm_type),
                "metadata": False,
                "type": "realtime",
                "keywords": keywords,
                "group": group,
            }
        )
    return records


def split_description(description: str) -> tuple[str, str | None]:
    """The description as the client wrote it, and the media_url it recorded (if any)."""
    match = _RECORDED_URL.search(description)
    if match is None:
        return description, None
    return description[: match.start()], match.group(1)


def status_of(order: Order, texts: Texts) -> tuple[str, str | None]:
    """The Open311 status and status notes of ``order``."""
    if order.status == "closed":
        return "closed", order.close_note or None
    if order.status == "rejected":
        return "closed", order.reject_reason or None
    if order.status == "accepted":
        return "open", texts("open311.accepted")
    return "open", None


def request_record(
    order: Order, *, rules: Rules, texts: Texts, photo_url: str | None, updated: datetime | None
) -> dict[str, Node]:
    """``order`` as a ``request`` record; ``photo_url`` is the signed link to its photo,
    ``updated`` the time of its last event (None: its filing)."""
    status, notes = status_of(order, texts)
    description, recorded_url = split_description(order.description)
    return {
        "service_request_id": order.number,
        "status": status,
        "status_notes": notes,
        "service_name": order.alarm_type,
        "service_code": order.alarm_type,
        "description": description or None,
        "agency_responsible": team_name(rules, order.team),
        "service_notice": None,
        "requested_datetime": w3_time(order.created_at),
        "updated_datetime": w3_time(updated or order.created_at),
        "expected_datetime": w3_time(order.due_resolve_at),
        "address": order.location,
        "address_id": None,
        "zipcode": None,
        "lat": order.latitude,
        "long": order.longitude,
        "media_url": photo_url or recorded_url,
    }
