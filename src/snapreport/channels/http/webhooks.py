"""The webhook admin API (admins: the admin token, or an admin of the rules file).

Subscriptions, secret rotation, the delivery log and redelivery; the delivery itself is the
outbox's (``snapreport.webhooks``). The caller is checked before a body is read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from snapreport.channels.http.auth import CurrentCaller
from snapreport.channels.http.body import json_body, read_json
from snapreport.channels.http.schemas import (
    DeliveryList,
    DeliveryOut,
    ErrorOut,
    Redelivered,
    WebhookCreated,
    WebhookDeleted,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from snapreport.channels.http.state import State
from snapreport.dispatch.roles import check_admin
from snapreport.webhooks.base import Endpoint

router = APIRouter(tags=["webhooks"])

EndpointId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")]
DeliveryId = Annotated[int, Path(ge=1, lt=2**63)]
MAX_BODY_BYTES = 16 * 1024
MAX_DELIVERIES = 200
WHAT = "manage webhooks"

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422, 503)
}


def _out(endpoint: Endpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        created_at=endpoint.created_at,
        disabled=endpoint.disabled_at is not None,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
    )


@router.post(
    "/api/v1/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    **json_body(WebhookIn, _ERRORS),
)
async def subscribe(request: Request, state: State, caller: CurrentCaller) -> WebhookCreated:
    """Subscribe a URL to order events; the answer carries its secret, shown this once."""
    check_admin(caller.roles, WHAT)
    body = await read_json(request, WebhookIn, limit=MAX_BODY_BYTES)
    endpoint, secret = await state.app.webhooks.subscribe(body.url, body.events, body.description)
    return WebhookCreated(id=endpoint.id, secret=secret)


@router.get("/api/v1/webhooks", response_model=WebhookList, responses=_ERRORS)
async def list_webhooks(state: State, caller: CurrentCaller) -> WebhookList:
    """Every subscription, oldest first, without secrets."""
    check_admin(caller.roles, WHAT)
    return WebhookList(webhooks=[_out(e) for e in await state.app.webhooks.endpoints()])


@router.delete("/api/v1/webhooks/{endpoint_id}", response_model=WebhookDeleted, responses=_ERRORS)
async def delete_webhook(
    endpoint_id: EndpointId, state: State, caller: CurrentCaller
) -> WebhookDeleted:
    """Delete a subscription with its pending deliveries and its log."""
    check_admin(caller.roles, WHAT)
    await state.app.webhooks.delete(endpoint_id)
    return WebhookDeleted(id=endpoint_id, deleted=True)


@router.post("/api/v1/webhooks/{endpoint_id}/enable", response_model=WebhookOut, responses=_ERRORS)
async def enable_webhook(
    endpoint_id: EndpointId, state: State, caller: CurrentCaller
) -> WebhookOut:
    """Enable a subscription again (after five days of failures disabled it) and reset its
    failure clock; changes made while it was disabled are not sent."""
    check_admin(caller.roles, WHAT)
    return _out(await state.app.webhooks.enable(endpoint_id))


@router.post(
    "/api/v1/webhooks/{endpoint_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=_ERRORS,
)
async def rotate_secret(
    endpoint_id: EndpointId, state: State, caller: CurrentCaller
) -> WebhookCreated:
    """A new secret; the old one keeps signing beside it for 24 hours."""
    check_admin(caller.roles, WHAT)
    secret = await state.app.webhooks.rotate_secret(endpoint_id)
    return WebhookCreated(id=endpoint_id, secret=secret)


@router.get(
    "/api/v1/webhooks/{endpoint_id}/deliveries", response_model=DeliveryList, responses=_ERRORS
)
async def deliveries(
    endpoint_id: EndpointId,
    state: State,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = 50,
) -> DeliveryList:
    """The latest delivery attempts, one entry per attempt, newest first."""
    check_admin(caller.roles, WHAT)
    found = await state.app.webhooks.attempts(endpoint_id, limit=limit)
    return DeliveryList(
        deliveries=[
            DeliveryOut(
                delivery_id=str(a.delivery_id),
                message_id=a.message_id,
                event_type=a.event_type,
                attempt=a.attempt,
                status_code=a.status_code,
                error=a.error,
                response=a.response,
                at=a.at,
                next_attempt_at=a.next_attempt_at,
            )
            for a in found
        ]
    )


@router.post(
    "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=Redelivered,
    status_code=202,
    responses=_ERRORS,
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, state: State, caller: CurrentCaller
) -> Redelivered:
    """Send that delivery's message again: the same webhook-id, a fresh retry schedule."""
    check_admin(caller.roles, WHAT)
    message_id = await state.app.webhooks.redeliver(endpoint_id, delivery_id)
    return Redelivered(delivery_id=str(delivery_id), message_id=message_id, redelivered=True)
