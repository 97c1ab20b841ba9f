"""``SqlWebhooks``: subscriptions and the delivery log on the orders database."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from snapreport.errors import Conflict, InvalidInput, WebhookNotFound
from snapreport.logs import get_logger
from snapreport.orders.database import writer
from snapreport.outbox.base import OutboxMessage
from snapreport.outbox.sqlalchemy import enqueue, store_guard
from snapreport.webhooks.base import (
    ALL_EVENTS,
    DELIVER_TOPIC,
    EVENT_TYPES,
    ROTATION_OVERLAP,
    Attempt,
    Endpoint,
)
from snapreport.webhooks.signing import new_secret
from snapreport.webhooks.tables import (
    MAX_DESCRIPTION_LENGTH,
    WebhookAttemptRow,
    WebhookEndpointRow,
)
from snapreport.webhooks.targets import TargetCheck

log = get_logger("snapreport.webhooks")

Clock = Callable[[], float]


class TooManyEndpoints(Conflict):
    code = "too_many_webhooks"


def check_events(events: Sequence[str]) -> tuple[str, ...]:
    """The subscribed event types, each once; ``["*"]`` is every event."""
    unique = tuple(dict.fromkeys(events))
    if not unique:
        raise InvalidInput('events lists event types, or ["*"] for every event')
    if ALL_EVENTS in unique:
        if len(unique) > 1:
            raise InvalidInput('"*" already means every event; give it alone')
        return unique
    unknown = [e for e in unique if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    return unique


def decode_events(text: str) -> tuple[str, ...]:
    return tuple(msgspec.json.decode(text, type=list[str]))


def endpoint_of(row: WebhookEndpointRow) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        events=decode_events(row.events),
        description=row.description,
        created_at=row.created_at,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
    )


def deliver_job(message_id: str, *, attempt: int, retry: int, due_at: datetime) -> OutboxMessage:
    """The outbox job that makes attempt ``attempt`` of a message (``retry`` retries of its
    schedule used so far)."""
    return OutboxMessage(
        DELIVER_TOPIC,
        {"message_id": message_id, "attempt": attempt, "retry": retry},
        due_at=due_at,
    )


class SqlWebhooks:
    """The ``WebhookStore`` port (see ``base.py``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        targets: TargetCheck,
        *,
        max_endpoints: int,
        clock: Clock = time.time,
    ) -> None:
        self._targets = targets
        self._max_endpoints = max_endpoints
        self._clock = clock
        self._reads = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer(engine), expire_on_commit=False)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[AsyncSession]:
        async with store_guard(action), self._writes() as session, session.begin():
            yield session

    async def subscribe(
        self, url: str, events: Sequence[str], description: str
    ) -> tuple[Endpoint, str]:
        chosen = check_events(events)
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidInput(f"a description has at most {MAX_DESCRIPTION_LENGTH} characters")
        await self._targets.check(url)
        secret = new_secret()
        row = WebhookEndpointRow(
            id="ep_" + secrets.token_hex(12),
            url=url,
            events=msgspec.json.encode(list(chosen)).decode(),
            description=description,
            secret=secret,
            created_at=self._now(),
        )
        async with self._write("adding a webhook") as session:
            count = await session.scalar(select(func.count()).select_from(WebhookEndpointRow))
            if (count or 0) >= self._max_endpoints:
                raise TooManyEndpoints(
                    f"at most {self._max_endpoints} webhooks (SNAPREPORT_WEBHOOKS__MAX_ENDPOINTS)"
                )
            session.add(row)
        return endpoint_of(row), secret

    async def endpoints(self) -> Sequence[Endpoint]:
        query = select(WebhookEndpointRow).order_by(
            WebhookEndpointRow.created_at, WebhookEndpointRow.id
        )
        async with store_guard("listing webhooks"), self._reads() as session:
            return [endpoint_of(row) for row in (await session.scalars(query)).all()]

    async def delete(self, endpoint_id: str) -> None:
        async with self._write("deleting a webhook") as session:
            result = await session.execute(
                delete(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise WebhookNotFound(f"no webhook {endpoint_id!r}")

    async def enable(self, endpoint_id: str) -> Endpoint:
        async with self._write("enabling a webhook") as session:
            row = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=True)
            if row is None:
                raise WebhookNotFound(f"no webhook {endpoint_id!r}")
            if row.disabled_at is not None:
                log.info("webhook_endpoint_enabled", endpoint_id=endpoint_id)
            row.disabled_at = None
            row.failing_since = None
            return endpoint_of(row)

    async def rotate_secret(self, endpoint_id: str) -> str:
        secret = new_secret()
        async with self._write("rotating a webhook secret") as session:
            row = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=True)
            if row is None:
                raise WebhookNotFound(f"no webhook {endpoint_id!r}")
            row.previous_secret = row.secret
            row.previous_secret_until = self._now() + ROTATION_OVERLAP
            row.secret = secret
        return secret

    async def attempts(self, endpoint_id: str, *, limit: int) -> Sequence[Attempt]:
        query = (
            select(WebhookAttemptRow)
            .where(WebhookAttemptRow.endpoint_id == endpoint_id)
            .order_by(WebhookAttemptRow.id.desc())
            .limit(limit)
        )
        async with store_guard("listing webhook deliveries"), self._reads() as session:
            if await session.get(WebhookEndpointRow, endpoint_id) is None:
                raise WebhookNotFound(f"no webhook {endpoint_id!r}")
            rows = (await session.scalars(query)).all()
        return [
            Attempt(
                delivery_id=row.id,
                message_id=row.message_id,
                event_type=row.event_type,
                attempt=row.attempt,
                status_code=row.status_code,
                error=row.error,
                response=row.response,
                at=row.at,
                next_attempt_at=row.next_attempt_at,
            )
            for row in rows
        ]

    async def redeliver(self, endpoint_id: str, delivery_id: int) -> str:
        now = self._now()
        async with self._write("redelivering a webhook message") as session:
            row = await session.get(WebhookAttemptRow, delivery_id)
            if row is None or row.endpoint_id != endpoint_id:
                raise WebhookNotFound(f"no delivery {delivery_id} of webhook {endpoint_id!r}")
            last = await session.scalar(
                select(func.max(WebhookAttemptRow.attempt)).where(
                    WebhookAttemptRow.message_id == row.message_id
                )
            )
            enqueue(
                session,
                deliver_job(row.message_id, attempt=(last or 0) + 1, retry=0, due_at=now),
                now=now,
            )
            return row.message_id


def message_row(endpoint_id: str, event_type: str, body: str, now: datetime) -> dict[str, Any]:
    """A new message for one endpoint, with its webhook-id (a ``webhook_messages`` row)."""
    return {
        "id": "msg_" + secrets.token_hex(16),
        "endpoint_id": endpoint_id,
        "event_type": event_type,
        "body": body,
        "created_at": now,
    }
