"""The routing rules file: parsing, routing by type and location glob, roles, and errors that
name the line and the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from snapreport.dispatch.roles import Roles
from snapreport.dispatch.rules import Rules, RulesError, load_rules, parse_duration, parse_rules

EXAMPLE = """\
[teams.fire]
name = "消防安全组"
members = ["lisi", "wangwu"]
leads = ["zhaoliu"]
assign = "claim"

[teams.property]
name = "物业组"
members = ["pm1", "pm2"]
leads = ["pmlead"]
assign = "round_robin"

[[rules]]
alarm_types = ["消防通道堵塞", "消防设施损坏"]
locations = ["A区*", "*3号楼*"]
team = "fire"
accept_within = "30m"
resolve_within = "4h"

[[rules]]
locations = ["B区*"]
team = "property"
accept_within = "10s"
resolve_within = "1d"

[default]
team = "property"
accept_within = "2h"
resolve_within = "24h"

[roles]
dispatchers = ["dispatcher1"]
admins = ["root"]
"""

CATALOG = ["消防通道堵塞", "消防设施损坏", "垃圾堆放", "其他"]


def test_a_rule_matches_by_type_and_location_glob() -> None:
    rules = parse_rules(EXAMPLE, catalog=CATALOG)
    route = rules.route("消防通道堵塞", "A区北门")
    assert route is not None
    assert route.team.id == "fire"
    assert route.accept_within == timedelta(minutes=30)
    assert route.resolve_within == timedelta(hours=4)
    inner = rules.route("消防设施损坏", "东区3号楼楼梯间")
    assert inner is not None
    assert inner.team.id == "fire"


def test_the_first_matching_rule_wins_and_the_default_takes_the_rest() -> None:
    rules = parse_rules(EXAMPLE, catalog=CATALOG)
    by_place = rules.route("垃圾堆放", "B区车库")
    assert by_place is not None
    assert by_place.accept_within == timedelta(seconds=10)
    # the fire rule needs both a fire type and a fire place
    elsewhere = rules.route("消防通道堵塞", "C区")
    assert elsewhere is not None
    assert elsewhere.team.id == "property"
    assert elsewhere.accept_within == timedelta(hours=2)


def test_globs_ignore_case() -> None:
    rules = parse_rules(EXAMPLE.replace('"B区*"', '"building b*"'))
    route = rules.route("其他", "Building B, floor 2")
    assert route is not None
    assert route.accept_within == timedelta(seconds=10)


def test_no_default_leaves_unmatched_orders_unrouted() -> None:
    text = EXAMPLE.split("[default]")[0] + "[roles]\n"
    assert parse_rules(text).route("其他", "C区") is None


def test_no_file_means_no_teams_and_no_roles() -> None:
    rules = Rules()
    assert rules.route("其他", "anywhere") is None
    assert rules.roles_of("lisi") == Roles(user_id="lisi")
    assert rules.roles_of("lisi").names() == []


def test_roles_of_a_user() -> None:
    rules = parse_rules(EXAMPLE)
    lisi = rules.roles_of("lisi")
    assert lisi.member_of == {"fire"}
    assert lisi.lead_of == frozenset()
    assert lisi.names() == ["member"]
    lead = rules.roles_of("zhaoliu")
    assert lead.lead_of == {"fire"}
    assert lead.teams == {"fire"}
    assert lead.names() == ["lead"]
    assert rules.roles_of("dispatcher1").names() == ["dispatcher"]
    assert rules.roles_of("root").admin
    assert rules.staff() == {
        "lisi", "wangwu", "zhaoliu", "pm1", "pm2", "pmlead", "dispatcher1", "root"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30m", 1800), ("4h", 14400), ("2d", 172800), (" 5m ", 300)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0m", "30", "m", "1.5h", "-1h", "3w", "30 minutes"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [
        (('assign = "claim"', 'assign = "grab"'), 5, "claim"),
        (('accept_within = "30m"', 'accept_within = "30 minutes"'), 17, "not a duration"),
        (('team = "fire"', 'team = "firee"'), 16, "no team 'firee'"),
        (('resolve_within = "4h"', 'resolve_within = "5m"'), 18, "shorter than accept_within"),
        (('name = "物业组"', 'nmae = "物业组"'), 8, "Extra inputs"),
        (('"消防设施损坏"]', '"消防设施坏了"]'), 14, "not an alarm type"),
        (('members = ["pm1", "pm2"]', 'members = ["pm1", "pm 2"]'), 9, "not a user id"),
        (('dispatchers = ["dispatcher1"]', 'dispatchers = "dispatcher1"'), 32, "list"),
        (('admins = ["root"]\n', 'admins = ["root"]\n\n[teams.extra]\nmembers = 3\n'), 36, "list"),
        (('leads = ["zhaoliu"]', 'leads = ["zhaoliu"'), 5, "not valid TOML"),
    ],
)
def test_a_bad_file_names_the_line_and_the_reason(
    edit: tuple[str, str], line: int, reason: str
) -> None:
    old, new = edit
    assert old in EXAMPLE
    with pytest.raises(RulesError) as caught:
        parse_rules(EXAMPLE.replace(old, new, 1), source="rules.toml", catalog=CATALOG)
    message = caught.value.message
    assert f"line {line}" in message, message
    assert reason in message, message
    assert "rules.toml" in message


def test_a_team_id_that_is_also_a_user_is_refused() -> None:
    text = EXAMPLE.replace('members = ["lisi", "wangwu"]', 'members = ["lisi", "fire"]')
    with pytest.raises(RulesError, match="both a team and a user"):
        parse_rules(text)


def test_load_rules_reads_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert set(load_rules(path).teams) == {"fire", "property"}
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


async def test_a_bad_rules_file_stops_start_up(tmp_path: Path) -> None:
    from snapreport.bootstrap import build
    from snapreport.config import DispatchSettings, OrdersSettings, Settings

    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE.replace('assign = "claim"', 'assign = "grab"'), encoding="utf-8")
    settings = Settings(
        data_dir=tmp_path,
        orders=OrdersSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"),
        dispatch=DispatchSettings(rules_file=path),
    )
    with pytest.raises(RulesError, match="line 5"):
        async with build(settings):
            pytest.fail("started with a bad rules file")
    assert not (tmp_path / "orders.db").exists()
