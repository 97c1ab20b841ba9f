"""The outbox port: messages written with a change, jobs the worker hands to handlers.

A producer adds ``OutboxMessage``s to its own open transaction (``outbox.sqlalchemy.enqueue``),
so a message exists exactly when the change it announces was committed. Workers claim due
messages as ``OutboxJob``s, one worker per job at a time (a lease), and run the handler
registered for the job's topic; a handler that raises is retried with backoff, then
dead-lettered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

MAX_TOPIC_LENGTH = 64
MAX_PAYLOAD_BYTES = 256 * 1024

JobStatus = Literal["pending", "dead"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """Something to do after a commit: ``topic`` names the handler, ``payload`` is JSON."""

    topic: str  # "order.created" ... "order.escalated", "sla.check", ...
    payload: Mapping[str, Any]  # JSON-serialisable
    due_at: datetime | None = None  # None: deliver now; else not before this (UTC, aware)


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """A claimed message. ``attempt`` counts claims (1 on the first delivery attempt) and
    fences the claim: only the holder of this attempt may complete or reschedule it."""

    id: int
    topic: str
    payload: Mapping[str, Any]
    attempt: int
    due_at: datetime
    created_at: datetime


OutboxHandler = Callable[[OutboxJob], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed every attempt, kept until an admin retries it."""

    id: int
    topic: str
    payload: Mapping[str, Any]
    attempts: int
    last_error: str
    created_at: datetime
    dead_at: datetime


@dataclass(frozen=True, slots=True)
class Failure:
    """A job whose handler raised: retried at ``retry_at``, or dead when that is None."""

    job: OutboxJob
    error: str
    retry_at: datetime | None


class OutboxStore(Protocol):
    """Where outbox rows live; every method is one short transaction."""

    async def claim(self, limit: int, lease_seconds: float) -> Sequence[OutboxJob]:
        """Claim up to ``limit`` due, unleased pending jobs for ``lease_seconds``; each job is
        claimed by exactly one caller across processes until its lease runs out."""
        ...

    async def complete(self, jobs: Sequence[OutboxJob]) -> int:
        """Delete delivered jobs still held by their claim; returns how many were deleted."""
        ...

    async def fail(self, failures: Sequence[Failure]) -> None:
        """Reschedule or dead-letter failed jobs still held by their claim."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest pending job falls due (or its lease runs out); None if none."""
        ...

    async def dead_letters(self, *, after: int, limit: int) -> Sequence[DeadLetter]:
        """Dead letters with an id above ``after``, oldest first."""
        ...

    async def retry_dead(self, job_id: int) -> bool:
        """Make a dead letter pending again with a fresh attempt count; False if none."""
        ...

    async def counts(self) -> Mapping[JobStatus, int]:
        """How many rows are pending and dead."""
        ...


@dataclass(frozen=True, slots=True)
class Notification:
    """An in-app notification as a user reads it."""

    id: int
    type: str
    order_number: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    """A notification as staff see it on an order: to whom, what and when."""

    user_id: str
    type: str
    text: str
    created_at: datetime


class NotificationStore(Protocol):
    """In-app notifications and who is on WeCom."""

    async def list(self, user_id: str, *, after: int, limit: int) -> Sequence[Notification]:
        """``user_id``'s notifications with an id above ``after``, oldest first."""
        ...

    async def of_order(self, order_number: str, *, limit: int) -> Sequence[Recipient]:
        """The first ``limit`` notifications about one order, to whomever, oldest first."""
        ...

    async def mark_wecom_user(self, user_id: str) -> None:
        """Remember, durably, that ``user_id`` is a WeCom user."""
        ...
