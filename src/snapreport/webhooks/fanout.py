"""Fan-out: each "order." change becomes one message and one "webhook.deliver" job per
enabled endpoint subscribed to its type.

It runs inside the transaction in which the order handler completes the change's outbox job
(``OrderNotifier``'s ``also``), so a change is fanned out exactly once: a repeat of the job
finds it completed and writes nothing. The body is fixed here; every attempt sends it as is.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from snapreport.outbox.base import OutboxJob
from snapreport.outbox.sqlalchemy import enqueue
from snapreport.webhooks.base import ALL_EVENTS
from snapreport.webhooks.store import decode_events, deliver_job, message_row
from snapreport.webhooks.tables import WebhookEndpointRow


def event_body(job: OutboxJob) -> bytes:
    """``{"type", "timestamp", "data": <order>}``: the event as Standard Webhooks sends it;
    ``timestamp`` is when the change was committed."""
    return msgspec.json.encode(
        {
            "type": job.topic,
            "timestamp": job.created_at.isoformat(),
            "data": job.payload.get("order", {}),
        }
    )


async def fan_out(session: AsyncSession, job: OutboxJob, now: datetime) -> None:
    """Add the messages and delivery jobs of ``job`` to ``session``'s transaction."""
    rows = (
        await session.execute(
            select(WebhookEndpointRow.id, WebhookEndpointRow.events).where(
                WebhookEndpointRow.disabled_at.is_(None)
            )
        )
    ).all()
    subscribed = [
        endpoint_id
        for endpoint_id, events in rows
        if ALL_EVENTS in (chosen := decode_events(events)) or job.topic in chosen
    ]
    if not subscribed:
        return
    body = event_body(job)
    messages = [message_row(endpoint_id, job.topic, body, now) for endpoint_id in subscribed]
    session.add_all(messages)
    await session.flush()
    enqueue(
        session,
        *(deliver_job(m.id, attempt=1, retry=0, due_at=now) for m in messages),
        now=now,
    )
