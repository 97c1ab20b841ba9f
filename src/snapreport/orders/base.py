"""The ``OrderRepository`` port and its value types.

Order numbers are human-friendly (e.g. ``WO-20261124-0001``). The repository stores and
changes orders; WHO may change them and HOW their status moves is decided by
``snapreport.dispatch`` before it asks for a change. Changes are conditional on the order being
as it was seen, so of two concurrent changes exactly one applies. An unknown number raises
``OrderNotFound``. Adapters convert driver errors into ``StoreUnavailable``.

Exactly once per message: a create, close or merge given a ``MessageKey`` (channel, user,
message id) is written at most once for that key. Asked again with the same key, ``create``,
a closing ``apply`` and ``merge`` answer with the order the first call wrote, writing nothing (a
retried message whose first attempt wrote its order and then failed). A key already used for
another action is refused (``InvalidInput``). Calls without a key are not deduplicated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypedDict

from snapreport.orders.places import Box
from snapreport.outbox.base import OutboxMessage

OrderStatus = Literal["open", "accepted", "closed", "rejected"]
ORDER_STATUSES: tuple[OrderStatus, ...] = ("open", "accepted", "closed", "rejected")
# statuses in which an order still waits for someone to act
ACTIVE_STATUSES: tuple[OrderStatus, ...] = ("open", "accepted")
OrderAction = Literal["create", "close", "merge"]
# photos one order keeps at most: a report brings up to 4, merged reports add theirs
MAX_ORDER_PHOTOS = 20


@dataclass(frozen=True, slots=True)
class MessageKey:
    """Where a write came from: the channel, the user and the channel's id of the message."""

    channel: str
    user_id: str
    message_id: str


EventKind = Literal[
    "created",
    "assigned",
    "accepted",
    "transferred",
    "commented",
    "close_photo_rejected",
    "closed",
    "rejected",
    "reopened",
    "escalated",
    "merged_report",
]


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
    latitude: float | None = None
    longitude: float | None = None
    more_image_keys: tuple[str, ...] = ()  # photos after ``image_key``, in order

    @property
    def image_keys(self) -> tuple[str, ...]:
        """Every photo of the report, the first being ``image_key``."""
        first = (self.image_key,) if self.image_key else ()
        return (*first, *self.more_image_keys)


@dataclass(frozen=True, slots=True)
class DuplicateQuery:
    """Active orders of ``alarm_type`` filed since ``since`` whose folded location equals
    ``location_key`` (when not empty) or whose coordinates fall in ``box`` (when given)."""

    alarm_type: str
    since: datetime
    location_key: str = ""
    box: Box | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a new order goes: its team, the members to take turns (``round_robin``; empty
    for ``claim``) and its deadlines."""

    team: str
    due_accept_at: datetime
    due_resolve_at: datetime
    rotation: tuple[str, ...] = ()


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
    team: str | None = None
    accepted_at: datetime | None = None
    due_accept_at: datetime | None = None
    due_resolve_at: datetime | None = None
    escalation: int = 0
    latitude: float | None = None
    longitude: float | None = None
    reject_reason: str | None = None
    also_reported_by: tuple[str, ...] = ()
    image_keys: tuple[str, ...] = ()  # every photo of the report, the first is ``image_key``


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One line of an order's event log."""

    order_number: str
    kind: str
    actor: str
    detail: str
    at: datetime


class OrderFields(TypedDict, total=False):
    """The columns a lifecycle change may set."""

    status: OrderStatus
    team: str | None
    assignee: str | None
    accepted_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    close_image_key: str | None
    close_verified: bool | None
    close_note: str | None
    forced: bool
    reject_reason: str | None
    due_resolve_at: datetime | None
    escalation: int


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One lifecycle change: applied only if the order still has the status, team and
    assignee it had when ``seen`` (what the permission check was made on), else not at all.
    ``message`` (closes only) keys the change to the message that asked for it."""

    seen: Order
    kind: EventKind
    actor: str
    detail: str
    fields: OrderFields
    message: MessageKey | None = None


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Filters of an order listing (all optional, combined with AND), newest first.

    ``visible_to`` limits the listing to what one user may see: orders of ``teams``, and those
    they reported, were assigned or were merged into (None: every order). ``numbers`` and
    ``alarm_types`` match any of theirs; ``offset`` skips that many matches (Open311's
    ``page``), ``after_id`` continues a keyset page.
    """

    statuses: tuple[OrderStatus, ...] = ()
    numbers: tuple[str, ...] = ()
    alarm_types: tuple[str, ...] = ()
    offset: int = 0
    team: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    alarm_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None
    overdue_at: datetime | None = None
    involving: str | None = None
    visible_to: tuple[str, frozenset[str]] | None = None
    after_id: int | None = None


@dataclass(frozen=True, slots=True)
class OrderPage:
    """A page of orders and the cursor of the next page (None: this was the last)."""

    orders: Sequence[Order]
    next_cursor: str | None


StatsGrouping = Literal["day", "alarm_type", "team", "location"]


@dataclass(frozen=True, slots=True)
class DayBin:
    """One local day of a ``day`` grouping: its key (``2026-11-29``) and its UTC bounds."""

    key: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """The dashboard's figures over orders created in ``[created_from, created_to)``, grouped
    by ``group_by`` (``days`` are the bins of a ``day`` grouping, in order). ``now`` decides
    what is overdue; ``visible_to`` as in ``OrderQuery``; ``limit`` bounds the groups of a
    ``location`` grouping (the most reported first); ``alarm_type`` keeps one type's orders."""

    group_by: StatsGrouping
    created_from: datetime
    created_to: datetime
    now: datetime
    days: tuple[DayBin, ...] = ()
    visible_to: tuple[str, frozenset[str]] | None = None
    limit: int = 10
    alarm_type: str | None = None


@dataclass(frozen=True, slots=True)
class StatsGroup:
    """The figures of one group (docs/console.md defines each)."""

    key: str | None
    created: int = 0
    closed: int = 0
    rejected: int = 0
    open_backlog: int = 0
    median_minutes_to_accept: float | None = None
    median_minutes_to_close: float | None = None
    sla_breaches: int = 0


class Announce(Protocol):
    """What to write to the outbox for a change: given the order after it and its event."""

    def __call__(self, order: Order, event: OrderEvent) -> Sequence[OutboxMessage]: ...


def no_announcements(order: Order, event: OrderEvent) -> Sequence[OutboxMessage]:
    """An ``Announce`` that writes nothing to the outbox (an order nobody is to be told of,
    such as one imported or made by a test)."""
    return ()


class OrderRepository(Protocol):
    """Alarms and work orders. Every write is one transaction that also writes the outbox
    messages ``announce`` returns for it, so a change and its announcements commit together."""

    async def create(
        self,
        report: NewReport,
        *,
        routing: Routing | None = None,
        announce: Announce = no_announcements,
    ) -> Order:
        """Create an alarm and its open work order (routed to ``routing``'s team, a member
        picked in turn when it rotates), logging ``created`` (and ``assigned``); with
        ``report.message``, the order that message created if there is one."""
        ...

    async def merge(
        self, number: str, report: NewReport, *, announce: Announce = no_announcements
    ) -> Order:
        """Merge ``report`` (a duplicate) into the active order ``number``: its photos are
        added to the order's (up to ``MAX_ORDER_PHOTOS``), its reporter to
        ``also_reported_by`` (unless already the reporter or there), and ``merged_report`` is
        logged; no order is created. ``OrderStateConflict`` if the order is no longer open or
        accepted. With ``report.message``, the order that message merged into if it did."""
        ...

    async def duplicates(self, query: DuplicateQuery) -> Sequence[Order]:
        """Candidates for a duplicate (see ``DuplicateQuery``), newest first, at most
        ``query.limit``; the caller measures the exact distance."""
        ...

    async def apply(self, change: OrderChange, *, announce: Announce) -> Order | None:
        """Apply ``change`` and log its event, if the order still has the status, team and
        assignee of ``change.seen``; None (nothing written) if it changed meanwhile. With
        ``change.message`` (a close), the order that message closed if there is one."""
        ...

    async def escalate(
        self, number: str, *, level: int, now: datetime, announce: Announce
    ) -> Order | None:
        """Raise the order's escalation to ``level`` if it is below it and the deadline of
        the level has passed while the order still qualifies (level 1: open past
        ``due_accept_at``; level 2: open or accepted past ``due_resolve_at``); else None.
        Level 2 first takes level 1 if that is due and was not taken: both happen, in order."""
        ...

    async def record_event(
        self,
        number: str,
        *,
        kind: EventKind,
        actor: str,
        detail: str,
        announce: Announce = no_announcements,
    ) -> Order:
        """Append to an order's event log without changing it (a comment, a close photo
        that was not accepted)."""
        ...

    async def get(self, number: str) -> Order: ...

    async def list(
        self,
        *,
        status: OrderStatus | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Order]:
        """Orders newest first; ``user_id`` matches the reporter, the assignee or a merged
        reporter."""
        ...

    async def page(self, query: OrderQuery, *, limit: int = 100) -> OrderPage:
        """Orders matching ``query``, newest first, at most ``limit``."""
        ...

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        """Open and accepted orders the user reported or is assigned to, newest first."""
        ...

    async def stats(self, query: StatsQuery) -> Sequence[StatsGroup]:
        """The figures of ``query``'s groups, computed by the database (GROUP BY)."""
        ...

    async def has_image(self, user_id: str, key: str) -> bool:
        """Whether ``key`` is a report photo or the close photo of an order the user reported, is
        assigned to or was merged into (one query, whatever the number of their orders)."""
        ...

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        """What the message did (``create``, ``close`` or ``merge``) and that order as it is
        now; None if it wrote nothing."""
        ...

    async def events(self, number: str) -> Sequence[OrderEvent]: ...

    async def last_changed(self, numbers: Sequence[str]) -> Mapping[str, datetime]:
        """When each of these orders last changed (the time of its newest event), by number;
        unknown numbers are left out."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
