"""Fan-out: each "order." change becomes one message and one "webhook.deliver" job per
enabled endpoint subscribed to its type.

It runs inside the transaction in which the order handler completes the changes' outbox jobs
(``OrderNotifier``'s ``also``, a round of changes at a time), so a change is fanned out exactly
once: a repeat of the job finds it completed and writes nothing. The body is fixed here; every
attempt sends it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import msgspec
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from snapreport.outbox.base import OutboxJob
from snapreport.outbox.sqlalchemy import enqueue_many
from snapreport.webhooks.base import ALL_EVENTS
from snapreport.webhooks.store import decode_events, deliver_job, message_row
from snapreport.webhooks.tables import WebhookEndpointRow, WebhookMessageRow


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


async def fan_out(session: AsyncSession, jobs: Sequence[OutboxJob], now: datetime) -> None:
    """Add the messages and delivery jobs of ``jobs`` to ``session``'s transaction: one
    read of the endpoints and one insert each of messages and jobs, however many changes."""
    if not jobs:
        return
    rows = (
        await session.execute(
            select(WebhookEndpointRow.id, WebhookEndpointRow.events).where(
                WebhookEndpointRow.disabled_at.is_(None)
            )
        )
    ).all()
    endpoints = [(endpoint_id, decode_events(events)) for endpoint_id, events in rows]
    messages = []
    for job in jobs:
        subscribed = [
            endpoint_id
            for endpoint_id, chosen in endpoints
            if ALL_EVENTS in chosen or job.topic in chosen
        ]
        if subscribed:
            body = event_body(job).decode()
            messages += [message_row(e, job.topic, body, now) for e in subscribed]
    if not messages:
        return
    # RETURNING makes it one statement a page (SQLAlchemy's "insertmanyvalues")
    await session.execute(
        insert(cast(Table, WebhookMessageRow.__table__)).returning(WebhookMessageRow.id), messages
    )
    await enqueue_many(
        session,
        [deliver_job(m["id"], attempt=1, retry=0, due_at=now) for m in messages],
        now=now,
    )
