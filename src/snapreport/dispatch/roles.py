"""Who a user is to dispatch (``Roles``), and every permission check of the order lifecycle.

Permissions live here and only here: HTTP routes and chat commands both call ``check`` (may
this user do this to this order?) and ``can_see`` (may they see it at all?). The rule of the
contract: dispatchers and admins see and act on every order; leads and members their teams'
orders; everyone the orders they reported or are assigned to. What each action needs:

==========  ===========================================================================
accept      a member (or lead) of the order's team, or a dispatcher/admin; an order
            handed to one person (round_robin, transfer) only by them or a lead
transfer    a lead of the order's team, a dispatcher/admin, or the assignee (within the
            team: only to a member of the same team)
reject      a lead of the order's team, or a dispatcher/admin
close       the reporter, the assignee, a lead of the order's team, or a dispatcher/admin
reopen      the reporter within the reopen window, or staff of the order (its team's
            members and leads, dispatchers, admins)
comment     anyone who can see the order
==========  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from snapreport.errors import NotOrderOwner, NotPermitted, OrderNotFound

Action = Literal["accept", "transfer", "reject", "close", "reopen", "comment"]


@dataclass(frozen=True, slots=True)
class Roles:
    """What a user is, from the rules file: member and lead of which teams, dispatcher, admin."""

    user_id: str
    member_of: frozenset[str] = frozenset()
    lead_of: frozenset[str] = frozenset()
    dispatcher: bool = False
    admin: bool = False

    @property
    def teams(self) -> frozenset[str]:
        """Every team the user belongs to, as member or lead."""
        return self.member_of | self.lead_of

    def names(self) -> list[str]:
        """The user's role names, e.g. ``["member", "lead", "dispatcher", "admin"]``."""
        return [
            name
            for name, held in (
                ("member", bool(self.member_of)),
                ("lead", bool(self.lead_of)),
                ("dispatcher", self.dispatcher),
                ("admin", self.admin),
            )
            if held
        ]

    @property
    def everywhere(self) -> bool:
        """Dispatchers and admins see and act on every order."""
        return self.dispatcher or self.admin


def admin_roles(user_id: str = "admin") -> Roles:
    """The roles of the admin token."""
    return Roles(user_id=user_id, admin=True)


class OrderFacts(Protocol):
    """What a permission check needs to know about an order."""

    @property
    def number(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def team(self) -> str | None: ...
    @property
    def reporter(self) -> str: ...
    @property
    def assignee(self) -> str | None: ...
    @property
    def closed_at(self) -> datetime | None: ...
    @property
    def also_reported_by(self) -> tuple[str, ...]: ...


def is_staff_of(roles: Roles, order: OrderFacts) -> bool:
    """A member or lead of the order's team, a dispatcher or an admin."""
    return roles.everywhere or (order.team is not None and order.team in roles.teams)


def is_lead_of(roles: Roles, order: OrderFacts) -> bool:
    """A lead of the order's team, a dispatcher or an admin."""
    return roles.everywhere or (order.team is not None and order.team in roles.lead_of)


def can_see(roles: Roles, order: OrderFacts) -> bool:
    """Who sees what: staff of the order, its reporter, assignee and merged reporters."""
    user = roles.user_id
    return (
        is_staff_of(roles, order)
        or user in (order.reporter, order.assignee)
        or user in order.also_reported_by
    )


def check_visible(roles: Roles, order: OrderFacts) -> None:
    """Raise ``OrderNotFound`` for an order the user may not see (it must not leak)."""
    if not can_see(roles, order):
        raise OrderNotFound(f"no work order {order.number!r}")


def check(
    action: Action,
    roles: Roles,
    order: OrderFacts,
    *,
    now: datetime | None = None,
    reopen_window: timedelta | None = None,
) -> None:
    """Raise ``OrderNotFound`` if the user may not see the order, ``NotPermitted`` if they
    may not do ``action`` to it. Status rules (already accepted, closed...) are the
    lifecycle's; this answers only *who*.

    A refused ``close`` is ``NotOrderOwner`` even for an order the user cannot see: the
    dialogue's ``结单`` has always said "not yours" (API.md Part 1). The HTTP API hides such
    orders itself (``check_visible`` first, 404)."""
    if action != "close":
        check_visible(roles, order)
    user = roles.user_id
    number = order.number
    if action == "accept":
        if user == order.assignee:
            return
        if not is_staff_of(roles, order):
            _refuse(action, "not_team_member", f"only a member of {number}'s team can accept it")
        if order.status == "open" and order.assignee is not None and not is_lead_of(roles, order):
            _refuse(
                action,
                "assigned_to_other",
                f"{number} is assigned to {order.assignee}; only they or a lead can accept it",
            )
    elif action == "transfer":
        if not (is_lead_of(roles, order) or user == order.assignee):
            _refuse(
                action,
                "not_lead",
                f"only a lead of {number}'s team, a dispatcher or its assignee can transfer it",
            )
    elif action == "reject":
        if not is_lead_of(roles, order):
            _refuse(
                action, "not_lead", f"only a lead of {number}'s team or a dispatcher can reject it"
            )
    elif action == "close":
        if not (is_lead_of(roles, order) or user in (order.reporter, order.assignee)):
            _refuse(
                action,
                "not_owner",
                f"only {number}'s reporter, its assignee or a lead of its team can close it",
            )
    elif action == "reopen":
        if is_staff_of(roles, order):
            return
        if user != order.reporter:
            _refuse(action, "not_reporter", f"only {number}'s reporter or its team can reopen it")
        if (
            reopen_window is not None
            and now is not None
            and order.closed_at is not None
            and now > order.closed_at + reopen_window
        ):
            days = reopen_window / timedelta(days=1)
            _refuse(
                action,
                "reopen_window",
                f"{number} was closed more than {days:g} days ago; ask its team to reopen it",
            )
    # comment: seeing the order is enough


def check_transfer_target(
    roles: Roles,
    order: OrderFacts,
    *,
    to_team: str | None = None,
    to_user: str | None = None,
    user_teams: frozenset[str] = frozenset(),
) -> None:
    """After ``check("transfer", ...)``: where the order may go. Leads and dispatchers send
    it to any team or person; its assignee only to another member of its team."""
    if is_lead_of(roles, order):
        return
    if to_team is not None:
        _refuse(
            "transfer",
            "not_lead",
            f"only a lead of {order.number}'s team or a dispatcher can move it to another team",
        )
    if to_user is not None and (order.team is None or order.team not in user_teams):
        _refuse(
            "transfer",
            "outside_team",
            f"{to_user} is not a member of {order.number}'s team; ask a lead to transfer it",
        )


def check_admin(roles: Roles, what: str) -> None:
    """Raise ``NotPermitted`` unless the user is an admin (the admin token, or the rules
    file's ``admins``); ``what`` names the thing only admins do."""
    if not roles.admin:
        raise NotPermitted(f"only an admin can {what}", reason="not_admin")


def _refuse(action: Action, reason: str, message: str) -> None:
    if action == "close":
        raise NotOrderOwner(message, reason=reason)
    raise NotPermitted(message, reason=reason)
