"""``GET /api/v1/events``: Server-Sent Events of order changes, as they happen.

Each change the caller may see is one ``event: order`` whose ``data`` is
``{"type": "order.<change>", "order": {...}}`` (the order as the API shows it), from whichever
process made it (``live``: Redis pub/sub across workers, memory in one process). Visibility is
checked per event with the same rule as the list (``dispatch.roles.can_see``) on the order as
the change left it. The stream opens with ``retry:`` and a comment (every change after it is
delivered), sends a comment every ``LIVE__HEARTBEAT_SECONDS`` (proxies keep it open), and
ends when its client falls ``LIVE__MAX_QUEUED`` events behind or the server stops: the client
reconnects after ``retry`` and reloads. A process holds at most ``LIVE__MAX_STREAMS`` streams
(then 503). Delivery is at most once; docs/console.md says where changes can be missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.schemas import ErrorOut, OrderOut
from snapreport.channels.http.state import State
from snapreport.dispatch.roles import Roles, can_see
from snapreport.errors import TooManyStreams
from snapreport.live.base import LiveEvent, Subscription

router = APIRouter(tags=["console"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 503)}


class _Facts:
    """What ``can_see`` needs, read from an event's order."""

    def __init__(self, order: dict[str, Any]) -> None:
        self.number = str(order.get("number", ""))
        self.status = str(order.get("status", ""))
        self.team = order.get("team")
        self.reporter = str(order.get("reporter", ""))
        self.assignee = order.get("assignee")
        closed = order.get("closed_at")
        self.closed_at = datetime.fromisoformat(closed) if isinstance(closed, str) else None
        self.also_reported_by = tuple(order.get("also_reported_by") or ())


def frame(event: LiveEvent) -> bytes:
    """One ``event: order`` frame, the order in the API's own JSON."""
    order = OrderOut.model_validate(event.order).model_dump(mode="json")
    data = json.dumps({"type": event.type, "order": order}, ensure_ascii=False)
    return f"event: order\ndata: {data}\n\n".encode()


@router.get(
    "/api/v1/events",
    response_class=StreamingResponse,
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "SSE"}},
)
async def events(state: State, caller: CurrentCaller) -> StreamingResponse:
    """Order changes the caller may see, as Server-Sent Events (``event: order``)."""
    live = state.app.settings.live
    hub = state.app.live.hub
    hub.check_room()  # answered as a 503 while it still can be

    async def stream() -> AsyncIterator[bytes]:
        # subscribed only once the answer streams, so a client that went away before it
        # started holds no slot; changes are delivered from the opening frame on
        try:
            subscription = hub.open()
        except TooManyStreams:
            yield b": too many streams, try again later\n\n"
            return
        try:
            yield f"retry: {live.retry_ms}\n: connected\n\n".encode()
            async for chunk in _frames(subscription, caller.roles, live.heartbeat_seconds):
                yield chunk
        finally:
            hub.release(subscription)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _frames(
    subscription: Subscription, roles: Roles, heartbeat_seconds: float
) -> AsyncIterator[bytes]:
    while not subscription.closed:
        event = await subscription.next(heartbeat_seconds)
        if event is None:
            if not subscription.closed:
                yield b": heartbeat\n\n"
            continue
        if can_see(roles, _Facts(event.order)):
            yield frame(event)
    yield b": reconnect\n\n"
