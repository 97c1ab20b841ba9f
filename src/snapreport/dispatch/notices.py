"""Who is told about an order change, and what they are told (API.md "Notifications").

``Notices(rules, texts)`` is the ``announce`` of every lifecycle write: given the order after
the change and its event, it returns the ONE "order.<kind>" outbox message of the change (with
its recipients and its text from the text catalogue), plus the "sla.check" messages due at the
order's deadlines when it was filed or reopened. Recipients:

==================  ==========================================================================
order.created       the team's members (claim) or the assignee (round_robin, preset)
order.accepted      the reporter and everyone in ``also_reported_by``
order.closed        the same, with the verdict
order.rejected      the same, with the reason
order.reopened      the assignee (kept), else the team's members
order.transferred   the new assignee, else the new team's members
order.escalated     the team's leads (level 1), the dispatchers (level 2)
order.commented     the reporter, the assignee and ``also_reported_by``, but not the author
==================  ==========================================================================

Leads are not sent ``order.created`` unless they are members too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from snapreport.dispatch.rules import Rules
from snapreport.dispatch.views import order_json, order_link
from snapreport.orders.base import Order, OrderEvent
from snapreport.outbox.base import OutboxMessage
from snapreport.workflow.texts import Texts

SLA_TOPIC = "sla.check"  # handled by dispatch.sla
MAX_SHOWN_CHARS = 200

# the event kinds that are announced, and the topic they are announced as
TOPICS = {
    "created": "order.created",
    "accepted": "order.accepted",
    "transferred": "order.transferred",
    "closed": "order.closed",
    "rejected": "order.rejected",
    "reopened": "order.reopened",
    "escalated": "order.escalated",
    "commented": "order.commented",
}


class Notices:
    """The outbox messages of order changes (see module doc)."""

    def __init__(self, rules: Rules, texts: Texts) -> None:
        self._rules = rules
        self._texts = texts

    def __call__(self, order: Order, event: OrderEvent) -> Sequence[OutboxMessage]:
        topic = TOPICS.get(event.kind)
        if topic is None:  # close_photo_rejected, assigned: in the log only
            return ()
        messages = [
            OutboxMessage(
                topic=topic,
                payload={
                    "type": topic,
                    "order_number": order.number,
                    "order": order_json(order),
                    "actor": event.actor,
                    "recipients": self.recipients(order, event),
                    "text": self.text(order, event),
                    "link": order_link(order.number),
                },
            )
        ]
        if event.kind in ("created", "reopened"):
            messages += sla_checks(order, first_level=1 if event.kind == "created" else 2)
        return messages

    def recipients(self, order: Order, event: OrderEvent) -> list[str]:
        """Who is told about ``event`` (see module doc), each once, in a stable order."""
        team = self._rules.team(order.team) if order.team is not None else None
        members = team.members if team is not None else ()
        kind = event.kind
        people: Iterable[str]
        if kind == "created":
            people = [order.assignee] if order.assignee is not None else members
        elif kind in ("accepted", "closed", "rejected"):
            people = [order.reporter, *order.also_reported_by]
        elif kind in ("reopened", "transferred"):
            people = [order.assignee] if order.assignee is not None else members
        elif kind == "escalated":
            level = order.escalation
            people = team.leads if level == 1 and team is not None else ()
            if level == 2:
                people = sorted(self._rules.dispatchers)
        else:  # commented
            people = [
                p
                for p in (order.reporter, order.assignee, *order.also_reported_by)
                if p is not None and p != event.actor
            ]
        return list(dict.fromkeys(people))

    def text(self, order: Order, event: OrderEvent) -> str:
        """The notification's text in the configured language."""
        say = self._texts
        common = {
            "number": order.number,
            "alarm_type": order.alarm_type,
            "location": _cut(order.location),
            "actor": event.actor,
        }
        kind = event.kind
        if kind == "created":
            key = "notify.created" if order.assignee is None else "notify.created_assigned"
            description = _cut(order.description) or say("summary.no_description")
            return say(key, description=description, **common)
        if kind == "accepted":
            return say("notify.accepted", assignee=order.assignee or event.actor, **common)
        if kind == "closed":
            if order.forced:
                verdict = say("notify.verdict_forced")
            elif order.close_verified:
                verdict = say("notify.verdict_verified", note=_cut(order.close_note or ""))
            else:
                verdict = say("notify.verdict_unverified")
            return say("notify.closed", verdict=verdict, **common)
        if kind == "rejected":
            return say("notify.rejected", reason=_cut(order.reject_reason or ""), **common)
        if kind == "reopened":
            return say("notify.reopened", reason=_cut(event.detail), **common)
        if kind == "transferred":
            key = "notify.transferred_user" if order.assignee else "notify.transferred_team"
            return say(key, team=order.team or "", **common)
        if kind == "escalated":
            if order.escalation == 1:
                return say("notify.escalated_accept", due=_when(order.due_accept_at), **common)
            return say("notify.escalated_resolve", due=_when(order.due_resolve_at), **common)
        return say("notify.commented", text=_cut(event.detail), **common)


def sla_checks(order: Order, *, first_level: int) -> list[OutboxMessage]:
    """The "sla.check" messages of ``order``'s deadlines, from ``first_level`` up."""
    dues = {1: order.due_accept_at, 2: order.due_resolve_at}
    return [
        OutboxMessage(
            topic=SLA_TOPIC, payload={"order_number": order.number, "level": level}, due_at=due
        )
        for level, due in dues.items()
        if level >= first_level and due is not None
    ]


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "-"
