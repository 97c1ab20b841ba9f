"""The ``OrderRepository`` port and its value types.

Order numbers are human-friendly (e.g. ``WO-20261124-0001``). Only the reporter or the
assignee may close an order (``NotOrderOwner``); a closed order cannot be closed again
(``OrderAlreadyClosed``); an unknown number raises ``OrderNotFound``. Adapters convert driver
errors into ``StoreUnavailable``.

Exactly once per message: a create or close given a ``MessageKey`` (channel, user, message id)
is written at most once for that key. Asked again with the same key, ``create`` and ``close``
answer with the order the first call wrote, writing nothing (a retried message whose first
attempt wrote its order and then failed). A key already used for the other action is refused
(``InvalidInput``). Calls without a key are not deduplicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

OrderStatus = Literal["open", "closed"]
OrderAction = Literal["create", "close"]


@dataclass(frozen=True, slots=True)
class MessageKey:
    """Where a write came from: the channel, the user and the channel's id of the message."""

    channel: str
    user_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class NewReport:
    """What a confirmed report carries: it becomes an alarm and its work order."""

    reporter: str
    alarm_type: str
    location: str
    description: str
    image_key: str | None
    confidence: float | None = None
    assignee: str | None = None
    source: str = "chat"
    message: MessageKey | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """A work order and its alarm, as the API shows it."""

    number: str
    status: OrderStatus
    alarm_id: str
    alarm_type: str
    location: str
    description: str
    reporter: str
    assignee: str | None
    image_key: str | None
    close_image_key: str | None
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    close_verified: bool | None
    close_note: str | None
    forced: bool


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One line of an order's event log."""

    order_number: str
    kind: str
    actor: str
    detail: str
    at: datetime


class OrderRepository(Protocol):
    """Alarms and work orders."""

    async def create(self, report: NewReport) -> Order:
        """Create an alarm and its open work order, logging a ``created`` event; with
        ``report.message``, the order that message created if there is one."""
        ...

    async def get(self, number: str) -> Order: ...

    async def list(
        self,
        *,
        status: OrderStatus | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Order]:
        """Orders newest first; ``user_id`` matches the reporter or the assignee."""
        ...

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        """Open orders the user reported or is assigned to, newest first."""
        ...

    async def check_can_close(self, number: str, user_id: str) -> Order:
        """The order, if it exists, is open and is the user's; else the specific error."""
        ...

    async def has_image(self, user_id: str, key: str) -> bool:
        """Whether ``key`` is the report or close photo of an order the user reported or is
        assigned to (one query, whatever the number of their orders)."""
        ...

    async def close(
        self,
        number: str,
        *,
        by: str,
        close_image_key: str | None,
        verified: bool | None,
        note: str,
        forced: bool,
        message: MessageKey | None = None,
    ) -> Order:
        """Close an open order of ``by``'s, logging a ``closed`` event; with ``message``, the
        order that message closed if there is one."""
        ...

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        """What the message did (``create`` or ``close``) and that order as it is now; None if
        it wrote nothing."""
        ...

    async def record_event(self, number: str, *, kind: str, actor: str, detail: str) -> None:
        """Append to an order's event log (e.g. a close photo that was not accepted)."""
        ...

    async def events(self, number: str) -> Sequence[OrderEvent]: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
