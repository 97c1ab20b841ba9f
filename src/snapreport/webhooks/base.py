"""The webhooks port: subscriptions and the delivery log as the admin API shows them.

Delivery itself runs on the outbox: the order handler fans each "order." change out to the
matching endpoints (``fanout.py``), and "webhook.deliver" jobs send them (``sender.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

DELIVER_TOPIC: Final = "webhook.deliver"
# API.md: after the first attempt, retries about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h later
RETRY_SCHEDULE: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
DISABLE_AFTER: Final = timedelta(days=5)  # an endpoint failing this long is disabled
ROTATION_OVERLAP: Final = timedelta(hours=24)  # the old secret keeps signing this long
EVENT_TYPES: Final = (
    "order.created",
    "order.accepted",
    "order.transferred",
    "order.closed",
    "order.rejected",
    "order.reopened",
    "order.escalated",
    "order.commented",
)
ALL_EVENTS: Final = "*"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A subscription as the admin API lists it (never with its secret)."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str
    created_at: datetime
    failing_since: datetime | None
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt in the log."""

    delivery_id: int
    message_id: str
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    response: str | None
    at: datetime
    next_attempt_at: datetime | None


class WebhookStore(Protocol):
    """Subscriptions and their delivery log; every method is one short transaction."""

    async def subscribe(
        self, url: str, events: Sequence[str], description: str
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (``whsec_...``), shown this once."""
        ...

    async def endpoints(self) -> Sequence[Endpoint]:
        """Every endpoint, oldest first."""
        ...

    async def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint, its messages and its log; ``WebhookNotFound`` if none."""
        ...

    async def enable(self, endpoint_id: str) -> Endpoint:
        """Enable an endpoint again (disabled or not) and reset its failure clock: the five
        days before disabling count from its next failure."""
        ...

    async def rotate_secret(self, endpoint_id: str) -> str:
        """A new secret; the current one keeps signing beside it for ``ROTATION_OVERLAP``."""
        ...

    async def attempts(self, endpoint_id: str, *, limit: int) -> Sequence[Attempt]:
        """The endpoint's latest delivery attempts, newest first."""
        ...

    async def redeliver(self, endpoint_id: str, delivery_id: int) -> str:
        """Send that attempt's message again (the same webhook-id, a fresh retry schedule);
        returns the message id."""
        ...
