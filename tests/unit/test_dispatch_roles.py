"""Permissions of the order lifecycle, in their one place: who may see and do what."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from snapreport.dispatch.roles import Action, Roles, admin_roles, can_see, check
from snapreport.errors import NotOrderOwner, NotPermitted, OrderNotFound

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Facts:
    number: str = "WO-20261129-0001"
    status: str = "open"
    team: str | None = "fire"
    reporter: str = "alice"
    assignee: str | None = None
    closed_at: datetime | None = None
    also_reported_by: tuple[str, ...] = ()


MEMBER = Roles("lisi", member_of=frozenset({"fire"}))
OTHER_MEMBER = Roles("pm1", member_of=frozenset({"property"}))
LEAD = Roles("zhaoliu", lead_of=frozenset({"fire"}))
OTHER_LEAD = Roles("pmlead", lead_of=frozenset({"property"}))
DISPATCHER = Roles("dispatcher1", dispatcher=True)
REPORTER = Roles("alice")
STRANGER = Roles("mallory")


def test_role_names_and_teams() -> None:
    both = Roles("x", member_of=frozenset({"a"}), lead_of=frozenset({"b"}), dispatcher=True)
    assert both.teams == {"a", "b"}
    assert both.names() == ["member", "lead", "dispatcher"]
    assert admin_roles().names() == ["admin"]
    assert admin_roles().user_id == "admin"


@pytest.mark.parametrize(
    ("roles", "seen"),
    [
        (MEMBER, True),
        (LEAD, True),
        (DISPATCHER, True),
        (admin_roles(), True),
        (REPORTER, True),
        (OTHER_MEMBER, False),
        (OTHER_LEAD, False),
        (STRANGER, False),
    ],
)
def test_who_sees_an_order(roles: Roles, seen: bool) -> None:
    assert can_see(roles, Facts()) is seen


def test_assignee_and_merged_reporters_see_it_too() -> None:
    assert can_see(Roles("pm1"), Facts(assignee="pm1"))
    assert can_see(Roles("bob"), Facts(also_reported_by=("bob",)))


def test_an_invisible_order_is_not_found_whatever_the_action() -> None:
    for action in ("accept", "transfer", "reject", "reopen", "comment"):
        with pytest.raises(OrderNotFound):
            check(action, OTHER_MEMBER, Facts())
    # the dialogue's 结单 says "not yours" (Part 1); HTTP checks visibility first
    with pytest.raises(NotOrderOwner):
        check("close", OTHER_MEMBER, Facts())


ALLOWED: dict[Action, set[str]] = {
    "accept": {"lisi", "zhaoliu", "dispatcher1", "admin"},
    "transfer": {"zhaoliu", "dispatcher1", "admin"},
    "reject": {"zhaoliu", "dispatcher1", "admin"},
    "close": {"alice", "zhaoliu", "dispatcher1", "admin"},
    "reopen": {"alice", "lisi", "zhaoliu", "dispatcher1", "admin"},
    "comment": {"alice", "lisi", "zhaoliu", "dispatcher1", "admin"},
}
VISIBLE = [MEMBER, LEAD, DISPATCHER, admin_roles(), REPORTER]


@pytest.mark.parametrize("action", list(ALLOWED))
@pytest.mark.parametrize("roles", VISIBLE, ids=lambda r: r.user_id)
def test_every_action_by_every_role(action: Action, roles: Roles) -> None:
    facts = Facts(status="closed", closed_at=NOW) if action == "reopen" else Facts()
    if roles.user_id in ALLOWED[action]:
        check(action, roles, facts, now=NOW, reopen_window=WEEK)
        return
    with pytest.raises(NotPermitted) as refused:
        check(action, roles, facts, now=NOW, reopen_window=WEEK)
    assert facts.number in refused.value.message
    assert refused.value.http_status == 403


def test_a_refused_close_is_not_order_owner() -> None:
    with pytest.raises(NotOrderOwner):
        check("close", MEMBER, Facts())


def test_the_assignee_may_close_and_transfer() -> None:
    facts = Facts(assignee="lisi", status="accepted")
    check("close", MEMBER, facts)
    check("transfer", MEMBER, facts)


def test_an_order_assigned_to_someone_else_cannot_be_accepted_by_a_member() -> None:
    facts = Facts(assignee="wangwu")
    with pytest.raises(NotPermitted, match="wangwu"):
        check("accept", MEMBER, facts)
    check("accept", LEAD, facts)
    check("accept", Roles("wangwu", member_of=frozenset({"fire"})), facts)


def test_a_preset_assignee_outside_the_team_may_accept() -> None:
    check("accept", Roles("external"), Facts(assignee="external"))


def test_an_order_without_team_is_only_for_dispatchers_and_its_people() -> None:
    facts = Facts(team=None)
    assert not can_see(MEMBER, facts)
    check("accept", DISPATCHER, facts)
    check("close", REPORTER, facts)


def test_the_reporter_may_reopen_only_within_the_window() -> None:
    facts = Facts(status="closed", closed_at=NOW - WEEK)
    check("reopen", REPORTER, facts, now=NOW, reopen_window=WEEK)
    late = replace(facts, closed_at=NOW - WEEK - timedelta(seconds=1))
    with pytest.raises(NotPermitted) as refused:
        check("reopen", REPORTER, late, now=NOW, reopen_window=WEEK)
    assert refused.value.reason == "reopen_window"
    assert "7 days" in refused.value.message
    # staff may reopen at any time
    check("reopen", LEAD, late, now=NOW, reopen_window=WEEK)
