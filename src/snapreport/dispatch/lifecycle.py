"""``Dispatch``: the order lifecycle. Every order is filed, routed, changed and escalated here.

::

    open ──accept──▶ accepted ──close──▶ closed ──reopen──▶ open
      │  ◀─transfer─┘   │                   (reporter within REOPEN_DAYS, or staff)
      └──reject──▶ rejected ◀──reject──┘

A change is: read the order, check WHO may do it (``roles.check``, the one place), check that
its status allows it (``TRANSITIONS``), then a conditional write that applies only if the
order's status, team and assignee are still what was checked; when another change won the
race, the order is read again and the checks say why this one cannot happen (for a second
accept: "already accepted by <winner>"). The write, its event and its outbox messages
(``Notices``) commit in one transaction; after the commit the change is published on the live
feed (``publish``: at most once, docs/console.md).

Chat users are named by their user id (their roles come from the rules file); HTTP callers
bring their ``Roles`` (the admin token is an admin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from snapreport.dispatch import roles as permissions
from snapreport.dispatch.duplicates import find_duplicate
from snapreport.dispatch.notices import Notices
from snapreport.dispatch.roles import Action, Roles
from snapreport.dispatch.rules import Rules
from snapreport.dispatch.views import order_json
from snapreport.errors import (
    Conflict,
    InvalidInput,
    OrderAlreadyAccepted,
    OrderAlreadyClosed,
    OrderStateConflict,
    Unavailable,
)
from snapreport.live.base import LiveEvent, LiveFeed
from snapreport.logs import get_logger
from snapreport.orders.base import (
    ACTIVE_STATUSES,
    EventKind,
    MessageKey,
    NewReport,
    Order,
    OrderAction,
    OrderChange,
    OrderEvent,
    OrderFields,
    OrderPage,
    OrderQuery,
    OrderRepository,
    OrderStatus,
    Routing,
    StatsGroup,
    StatsQuery,
)
from snapreport.workflow.texts import Texts

log = get_logger("snapreport.dispatch")

Clock = Callable[[], float]
Actor = str | Roles

MAX_REASON_CHARS: Final = 500
MAX_COMMENT_CHARS: Final = 2000
MAX_PAGE: Final = 200
# a change loses a race only to another change of the same order; this many losses in a row
# means the order is changing faster than anyone can act on it
MAX_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the lifecycle table: ``action`` moves an order from ``sources`` to
    ``target`` (None: the status stays)."""

    action: Action
    sources: tuple[OrderStatus, ...]
    target: OrderStatus | None
    event: EventKind


TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition("accept", ("open",), "accepted", "accepted"),
    Transition("transfer", ACTIVE_STATUSES, "open", "transferred"),
    Transition("reject", ACTIVE_STATUSES, "rejected", "rejected"),
    Transition("close", ACTIVE_STATUSES, "closed", "closed"),
    Transition("reopen", ("closed",), "open", "reopened"),
    Transition("comment", ("open", "accepted", "closed", "rejected"), None, "commented"),
)
_BY_ACTION: Final[Mapping[Action, Transition]] = {t.action: t for t in TRANSITIONS}


class Dispatch:
    """The order lifecycle over an ``OrderRepository`` (see module doc)."""

    def __init__(
        self,
        orders: OrderRepository,
        rules: Rules,
        *,
        texts: Texts,
        reopen_window: timedelta = timedelta(days=7),
        clock: Clock = time.time,
        feed: LiveFeed | None = None,
    ) -> None:
        self._orders = orders
        self._feed = feed
        self.rules = rules
        self.reopen_window = reopen_window
        self._clock = clock
        self._notices = Notices(rules, texts)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def roles(self, actor: Actor) -> Roles:
        """``actor``'s roles: as given, or from the rules file for a user id."""
        return actor if isinstance(actor, Roles) else self.rules.roles_of(actor)

    # -- filing ------------------------------------------------------------------------------

    async def create(self, report: NewReport) -> Order:
        """File a report: route it (team, deadlines, maybe an assignee in turn), store it and
        announce it, in one transaction."""
        order = await self._orders.create(
            report, routing=self.routing(report), announce=self._notices
        )
        await self.publish("created", order)
        return order

    async def duplicate_of(self, report: NewReport) -> Order | None:
        """An active order ``report`` duplicates (``dispatch.duplicates``), or None."""
        return await find_duplicate(self._orders, report, self.now())

    async def merge(self, number: str, report: NewReport) -> Order:
        """Merge a duplicate report into the active order ``number`` instead of filing it:
        its photos and reporter join the order, ``merged_report`` is logged; keyed by
        ``report.message`` like a create (a retried message merges once)."""
        order = await self._orders.merge(number, report, announce=self._notices)
        log.info("report_merged", order=order.number, reporter=report.reporter)
        await self.publish("merged_report", order)
        return order

    def routing(self, report: NewReport) -> Routing | None:
        """Where the rules send ``report`` (None: no rule and no default matched)."""
        route = self.rules.route(report.alarm_type, report.location)
        if route is None:
            return None
        now = self.now()
        team = route.team
        return Routing(
            team=team.id,
            due_accept_at=now + route.accept_within,
            due_resolve_at=now + route.resolve_within,
            rotation=team.members if team.assign == "round_robin" else (),
        )

    # -- reading -----------------------------------------------------------------------------

    async def get(self, number: str) -> Order:
        return await self._orders.get(number)

    async def visible(self, number: str, actor: Actor) -> Order:
        """The order, if ``actor`` may see it (else ``OrderNotFound``)."""
        order = await self._orders.get(number)
        permissions.check_visible(self.roles(actor), order)
        return order

    async def events(self, number: str) -> Sequence[OrderEvent]:
        return await self._orders.events(number)

    async def page(
        self, query: OrderQuery, actor: Actor, *, limit: int = 100, cursor: str | None = None
    ) -> OrderPage:
        """Orders matching ``query`` that ``actor`` may see, newest first."""
        roles = self.roles(actor)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        after = None
        if cursor is not None:
            if not cursor.isdecimal() or len(cursor) > 19:
                raise InvalidInput("cursor is not one this API gave out")
            after = int(cursor)
        visible_to = None if roles.everywhere else (roles.user_id, roles.teams)
        scoped = replace(query, visible_to=visible_to, after_id=after)
        return await self._orders.page(scoped, limit=limit)

    async def open_orders_for(self, user_id: str) -> Sequence[Order]:
        """Open and accepted orders the user reported or is assigned to."""
        return await self._orders.open_orders_for(user_id)

    async def active_orders_involving(self, user_id: str) -> Sequence[Order]:
        """Open and accepted orders the user reported, is assigned to or was merged into
        (``我的工单``), newest first, at most ``MAX_PAGE``."""
        query = OrderQuery(statuses=ACTIVE_STATUSES, involving=user_id)
        return (await self._orders.page(query, limit=MAX_PAGE)).orders

    async def tasks(self, actor: Actor, *, limit: int = 50) -> Sequence[Order]:
        """``待办``: orders waiting for the acceptance of ``actor``'s teams (or handed to
        them), and the ones they accepted, newest first."""
        roles = self.roles(actor)
        mine = await self._orders.page(
            OrderQuery(statuses=ACTIVE_STATUSES, assignee=roles.user_id), limit=limit
        )
        waiting: list[Order] = []
        for team in sorted(roles.teams):
            page = await self._orders.page(OrderQuery(statuses=("open",), team=team), limit=limit)
            waiting += [o for o in page.orders if o.assignee in (None, roles.user_id)]
        found = {o.number: o for o in [*mine.orders, *waiting]}
        return sorted(found.values(), key=lambda o: o.created_at, reverse=True)[:limit]

    # -- changes -----------------------------------------------------------------------------

    async def accept(self, number: str, actor: Actor) -> Order:
        """``actor`` takes the order: ``accepted``, assignee = them."""
        roles = self.roles(actor)
        return await self._change(
            "accept",
            number,
            roles,
            lambda order: {
                "status": "accepted",
                "assignee": roles.user_id,
                "accepted_at": self.now(),
            },
            detail=lambda order: roles.user_id,
        )

    async def transfer(self, number: str, actor: Actor, to: str) -> Order:
        """Hand the order to a team (its members are told; it waits for acceptance) or to a
        person (they are told; it waits for their acceptance)."""
        roles = self.roles(actor)
        target = to.strip()
        if not target:
            raise InvalidInput("say whom to transfer the order to (a user id or a team)")

        def fields(order: Order) -> OrderFields:
            team = self.rules.team(target)
            if team is not None:
                permissions.check_transfer_target(roles, order, to_team=team.id)
                return {"team": team.id, "assignee": None, "status": "open", "accepted_at": None}
            user_teams = self.rules.roles_of(target).member_of
            permissions.check_transfer_target(roles, order, to_user=target, user_teams=user_teams)
            if order.team is not None and order.team in user_teams:
                new_team: str | None = order.team
            elif len(user_teams) == 1:
                (new_team,) = user_teams
            else:
                new_team = order.team
            return {"team": new_team, "assignee": target, "status": "open", "accepted_at": None}

        return await self._change("transfer", number, roles, fields, detail=lambda o: target)

    async def reject(self, number: str, actor: Actor, reason: str) -> Order:
        """Not a problem, a duplicate, out of scope: ``rejected``, with a reason."""
        text = _required(reason, "reason", MAX_REASON_CHARS)
        return await self._change(
            "reject",
            number,
            self.roles(actor),
            lambda order: {"status": "rejected", "reject_reason": text},
            detail=lambda order: text,
        )

    async def check_can_close(self, number: str, user_id: Actor) -> Order:
        """The order, if ``user_id`` may close it now; else the specific error."""
        order = await self._orders.get(number)
        permissions.check("close", self.roles(user_id), order)
        _check_status(_BY_ACTION["close"], order)
        return order

    async def close(
        self,
        number: str,
        *,
        by: Actor,
        close_image_key: str | None,
        verified: bool | None,
        note: str,
        forced: bool,
        message: MessageKey | None = None,
    ) -> Order:
        """Close the order (by its reporter, assignee or a lead of its team); with
        ``message``, a close that message already made answers with its order, writing
        nothing (the repository's message key settles two concurrent attempts)."""
        roles = self.roles(by)
        now = self.now()
        earlier = await self._closed_by(message)
        if earlier is not None:
            return earlier
        try:
            return await self._change(
                "close",
                number,
                roles,
                lambda order: {
                    "status": "closed",
                    "closed_by": roles.user_id,
                    "closed_at": now,
                    "close_image_key": close_image_key,
                    "close_verified": verified,
                    "close_note": note,
                    "forced": forced,
                },
                detail=lambda order: f"[forced] {note}" if forced else note,
                message=message,
            )
        except OrderAlreadyClosed:
            # a concurrent attempt of the same message may have closed it just now
            earlier = await self._closed_by(message)
            if earlier is None:
                raise
            return earlier

    async def _closed_by(self, message: MessageKey | None) -> Order | None:
        """The order ``message`` closed, if it closed one."""
        if message is None:
            return None
        found = await self._orders.written_by(message)
        return found[1] if found is not None and found[0] == "close" else None

    async def reopen(self, number: str, actor: Actor, reason: str = "") -> Order:
        """Not fixed after all: ``open`` again, the assignee kept, a new resolve deadline
        (from now) and the escalation back to 0."""
        text = reason.strip()[:MAX_REASON_CHARS]

        def fields(order: Order) -> OrderFields:
            route = self.rules.route(order.alarm_type, order.location)
            due = self.now() + route.resolve_within if route is not None else None
            return {
                "status": "open",
                "closed_at": None,
                "closed_by": None,
                "close_image_key": None,
                "close_verified": None,
                "close_note": None,
                "forced": False,
                "accepted_at": None,
                "due_resolve_at": due if order.team is not None else None,
                "escalation": 0,
            }

        return await self._change(
            "reopen", number, self.roles(actor), fields, detail=lambda o: text
        )

    async def comment(self, number: str, actor: Actor, text: str) -> Order:
        """A comment in the order's log (announced as ``order.commented``)."""
        body = _required(text, "text", MAX_COMMENT_CHARS)
        roles = self.roles(actor)
        order = await self._orders.get(number)
        permissions.check("comment", roles, order)
        commented = await self._orders.record_event(
            order.number, kind="commented", actor=roles.user_id, detail=body, announce=self._notices
        )
        await self.publish("commented", commented)
        return commented

    async def written_by(self, message: MessageKey) -> tuple[OrderAction, Order] | None:
        """What the message did (``create``, ``close`` or ``merge``) and that order now."""
        return await self._orders.written_by(message)

    async def record_event(self, number: str, *, kind: EventKind, actor: str, detail: str) -> None:
        """Log an event that changes nothing (a close photo that was not accepted)."""
        order = await self._orders.record_event(
            number, kind=kind, actor=actor, detail=detail, announce=self._notices
        )
        await self.publish(kind, order)

    async def escalate(self, number: str, level: int) -> Order | None:
        """Escalate to ``level`` if its deadline passed and it was not yet; None otherwise
        (a repeated or stale check changes nothing)."""
        order = await self._orders.escalate(
            number, level=level, now=self.now(), announce=self._notices
        )
        if order is not None:
            log.info("order_escalated", order=order.number, level=level, team=order.team)
            await self.publish("escalated", order)
        return order

    async def stats(self, query: StatsQuery, actor: Actor) -> Sequence[StatsGroup]:
        """The dashboard's figures over the orders ``actor`` may see."""
        roles = self.roles(actor)
        visible_to = None if roles.everywhere else (roles.user_id, roles.teams)
        return await self._orders.stats(replace(query, visible_to=visible_to))

    async def publish(self, kind: str, order: Order) -> None:
        """Tell the live feed about a committed change (at most once: a feed that cannot be
        reached is logged, the change stands)."""
        if self._feed is None:
            return
        try:
            await self._feed.publish(LiveEvent(f"order.{kind}", order_json(order)))
        except Unavailable as exc:
            log.warning("live_publish_failed", order=order.number, kind=kind, reason=exc.message)

    # -- the one way a change is made --------------------------------------------------------

    async def _change(
        self,
        action: Action,
        number: str,
        roles: Roles,
        fields: Callable[[Order], OrderFields],
        *,
        detail: Callable[[Order], str],
        message: MessageKey | None = None,
    ) -> Order:
        transition = _BY_ACTION[action]
        for _ in range(MAX_ATTEMPTS):
            order = await self._orders.get(number)
            permissions.check(
                action, roles, order, now=self.now(), reopen_window=self.reopen_window
            )
            _check_status(transition, order)
            change = OrderChange(
                seen=order,
                kind=transition.event,
                actor=roles.user_id,
                detail=detail(order),
                fields=fields(order),
                message=message,
            )
            done = await self._orders.apply(change, announce=self._notices)
            if done is not None:
                log.info(
                    "order_changed", order=done.number, action=action, actor=roles.user_id,
                    status=done.status,
                )  # fmt: skip
                await self.publish(transition.event, done)
                return done
        raise Conflict(f"work order {number} is changing too often; try again")


def _check_status(transition: Transition, order: Order) -> None:
    if order.status in transition.sources:
        return
    number = order.number
    if transition.action == "accept" and order.status == "accepted" and order.assignee:
        raise OrderAlreadyAccepted(
            f"work order {number} was already accepted by {order.assignee}", by=order.assignee
        )
    if order.status == "closed" and transition.action != "reopen":
        raise OrderAlreadyClosed(f"work order {number} is already closed")
    raise OrderStateConflict(
        f"work order {number} is {order.status}; cannot {transition.action} it",
        status=order.status,
    )


def _required(text: str, name: str, limit: int) -> str:
    value = " ".join(text.split()) if name == "reason" else text.strip()
    if not value:
        raise InvalidInput(f"{name} is required")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value
