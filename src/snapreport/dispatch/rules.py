"""The routing rules file (TOML): teams, first-match rules, a default, and roles.

``load_rules(path)`` reads and checks it; anything wrong raises ``RulesError`` naming the file,
the line and the reason, so a bad file stops start-up (and ``snapreport dispatch check FILE``)
with a message that says where to look. ``Rules.route(alarm_type, location)`` picks the team
and deadlines of a new order; ``Rules.roles_of(user_id)`` says who a user is. See
docs/dispatch.md for the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from snapreport.dispatch.roles import Roles
from snapreport.errors import ConfigurationError

AssignMode = Literal["claim", "round_robin"]

MAX_FILE_BYTES = 1024 * 1024
_DURATION = re.compile(r"(?P<count>[0-9]+)\s*(?P<unit>[smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_USER_ID = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_TEAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RulesError(ConfigurationError):
    """The rules file cannot be used; the message names the file, the line and the reason."""

    code = "invalid_rules"


def parse_duration(text: str) -> timedelta:
    """``"30m"`` → 30 minutes: a positive integer and a unit (s, m, h or d)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write an integer and s, m, h or d ('30m')")
    seconds = int(match["count"]) * _UNITS[match["unit"]]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be more than zero")
    return timedelta(seconds=seconds)


# -- the file's schema (pydantic: unknown keys and wrong types are refused) ---------------


def _user_ids(values: list[str]) -> list[str]:
    for value in values:
        if not _USER_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a user id (1..64 of A-Z a-z 0-9 _ . @ : -)")
    if len(set(values)) != len(values):
        raise ValueError("a user id is listed twice")
    return values


def _duration(value: str) -> str:
    parse_duration(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _TeamModel(_Strict):
    name: str = ""
    members: list[str] = Field(default_factory=list, max_length=1000)
    leads: list[str] = Field(default_factory=list, max_length=1000)
    assign: AssignMode = "claim"

    _members = field_validator("members", "leads")(_user_ids)


class _Deadlines(_Strict):
    team: str
    accept_within: str
    resolve_within: str

    _durations = field_validator("accept_within", "resolve_within")(_duration)


class _RuleModel(_Deadlines):
    alarm_types: list[str] | None = Field(None, min_length=1, max_length=100)
    locations: list[str] | None = Field(None, min_length=1, max_length=100)


class _RolesModel(_Strict):
    dispatchers: list[str] = Field(default_factory=list, max_length=1000)
    admins: list[str] = Field(default_factory=list, max_length=1000)

    _users = field_validator("dispatchers", "admins")(_user_ids)


class _FileModel(_Strict):
    teams: dict[str, _TeamModel] = Field(default_factory=dict, max_length=1000)
    rules: list[_RuleModel] = Field(default_factory=list, max_length=1000)
    default: _Deadlines | None = None
    roles: _RolesModel = _RolesModel()


# -- what the rest of snapreport uses ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Team:
    """A team: who may accept its orders (members), who oversees them (leads), how it is told."""

    id: str
    name: str
    members: tuple[str, ...]
    leads: tuple[str, ...]
    assign: AssignMode


@dataclass(frozen=True, slots=True)
class Route:
    """Where a new order goes: its team and how long it may wait to be accepted and closed."""

    team: Team
    accept_within: timedelta
    resolve_within: timedelta


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rules]]`` entry: a match on alarm type and location glob, and its route."""

    alarm_types: frozenset[str] | None
    locations: tuple[str, ...] | None
    route: Route

    def matches(self, alarm_type: str, location: str) -> bool:
        if self.alarm_types is not None and alarm_type not in self.alarm_types:
            return False
        if self.locations is None:
            return True
        folded = location.casefold()
        return any(fnmatchcase(folded, pattern.casefold()) for pattern in self.locations)


@dataclass(frozen=True, slots=True)
class Rules:
    """The parsed rules file. ``Rules()`` (no file): no teams, no routing, no roles."""

    teams: Mapping[str, Team] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    default: Route | None = None
    dispatchers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()

    def route(self, alarm_type: str, location: str) -> Route | None:
        """The first rule matching, else the default, else None (the order stays unrouted)."""
        for rule in self.rules:
            if rule.matches(alarm_type, location):
                return rule.route
        return self.default

    def team(self, team_id: str) -> Team | None:
        return self.teams.get(team_id)

    def roles_of(self, user_id: str) -> Roles:
        """Who ``user_id`` is: member and lead of which teams, dispatcher, admin."""
        return Roles(
            user_id=user_id,
            member_of=frozenset(t.id for t in self.teams.values() if user_id in t.members),
            lead_of=frozenset(t.id for t in self.teams.values() if user_id in t.leads),
            dispatcher=user_id in self.dispatchers,
            admin=user_id in self.admins,
        )

    def staff(self) -> frozenset[str]:
        """Every member, lead, dispatcher and admin the file names."""
        people: set[str] = set(self.dispatchers) | set(self.admins)
        for team in self.teams.values():
            people.update(team.members, team.leads)
        return frozenset(people)


def load_rules(path: Path, *, catalog: Sequence[str] | None = None) -> Rules:
    """Read and check the rules file at ``path``; ``catalog``, if given, is the alarm types
    rules may name. Raises ``RulesError`` naming the line and the reason."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RulesError(f"dispatch rules file {path}: cannot read it: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise RulesError(f"dispatch rules file {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"dispatch rules file {path}: not UTF-8 ({exc.reason})") from exc
    return parse_rules(text, source=str(path), catalog=catalog)


def parse_rules(text: str, *, source: str = "rules", catalog: Sequence[str] | None = None) -> Rules:
    """``load_rules`` on a string (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)"
        raise RulesError(f"dispatch rules file {source}: not valid TOML: {exc}") from exc
    locate = _Locator(text)
    try:
        model = _FileModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        raise RulesError(
            f"dispatch rules file {source}, line {locate(loc)}: {_dotted(loc)}: "
            f"{first['msg'].removeprefix('Value error, ')}"
        ) from exc
    problem = _cross_check(model, catalog)
    if problem is not None:
        loc, reason = problem
        raise RulesError(
            f"dispatch rules file {source}, line {locate(loc)}: {_dotted(loc)}: {reason}"
        )
    return _build(model)


def _cross_check(
    model: _FileModel, catalog: Sequence[str] | None
) -> tuple[tuple[str | int, ...], str] | None:
    """What pydantic cannot see: references between sections."""
    people: set[str] = set(model.roles.dispatchers) | set(model.roles.admins)
    for team_id, team in model.teams.items():
        if not _TEAM_ID.fullmatch(team_id):
            return ("teams", team_id), "a team id is 1..64 of A-Z a-z 0-9 _ -"
        if not team.members and not team.leads:
            return ("teams", team_id), "a team needs members or leads"
        if team.assign == "round_robin" and not team.members:
            return ("teams", team_id, "assign"), "round_robin needs at least one member"
        people.update(team.members, team.leads)
    for team_id in model.teams:
        if team_id in people:
            return ("teams", team_id), f"{team_id!r} is both a team and a user id"
    known = set(catalog) if catalog is not None else None
    entries: list[tuple[tuple[str | int, ...], _Deadlines]] = [
        (("rules", i), rule) for i, rule in enumerate(model.rules)
    ]
    if model.default is not None:
        entries.append((("default",), model.default))
    for loc, entry in entries:
        if entry.team not in model.teams:
            return (*loc, "team"), f"no team {entry.team!r} (add [teams.{entry.team}])"
        if parse_duration(entry.resolve_within) < parse_duration(entry.accept_within):
            return (*loc, "resolve_within"), "resolve_within is shorter than accept_within"
        if isinstance(entry, _RuleModel) and known is not None:
            unknown = [t for t in entry.alarm_types or () if t not in known]
            if unknown:
                return (*loc, "alarm_types"), (
                    f"{unknown[0]!r} is not an alarm type of the catalog (SNAPREPORT_ALARM_TYPES)"
                )
    return None


def _build(model: _FileModel) -> Rules:
    teams = {
        team_id: Team(
            id=team_id,
            name=team.name or team_id,
            members=tuple(team.members),
            leads=tuple(team.leads),
            assign=team.assign,
        )
        for team_id, team in model.teams.items()
    }

    def route(entry: _Deadlines) -> Route:
        return Route(
            team=teams[entry.team],
            accept_within=parse_duration(entry.accept_within),
            resolve_within=parse_duration(entry.resolve_within),
        )

    return Rules(
        teams=teams,
        rules=tuple(
            Rule(
                alarm_types=frozenset(rule.alarm_types) if rule.alarm_types else None,
                locations=tuple(rule.locations) if rule.locations else None,
                route=route(rule),
            )
            for rule in model.rules
        ),
        default=route(model.default) if model.default is not None else None,
        dispatchers=frozenset(model.roles.dispatchers),
        admins=frozenset(model.roles.admins),
    )


def _dotted(loc: Iterable[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part + 1}]"]
        else:
            parts.append(str(part))
    return ".".join(parts)


class _Locator:
    """The line a location like ``("rules", 2, "team")`` was written on.

    tomllib keeps no positions, so this finds the section header (``[teams.fire]``, the n-th
    ``[[rules]]``) and then the key's line within that section; failing that, the header.
    """

    _HEADER = re.compile(r"\s*\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"\s*(?P<key>[A-Za-z0-9_\"'.-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def __call__(self, loc: tuple[Any, ...]) -> int:
        if not loc:
            return 1
        head, rest = loc[0], loc[1:]
        if head == "rules":
            index = rest[0] if rest and isinstance(rest[0], int) else 0
            start = self._header("rules", nth=index)
            keys = rest[1:]
        elif head == "teams" and rest:
            start = self._header(f"teams.{rest[0]}")
            keys = rest[1:]
        else:
            start = self._header(str(head))
            keys = rest
        if start is None:
            return 1
        key = next((k for k in keys if isinstance(k, str)), None)
        if key is None:
            return start + 1
        for offset, line in enumerate(self._lines[start + 1 :], start + 1):
            if self._HEADER.match(line):
                break
            match = self._KEY.match(line)
            if match and match["key"].strip("\"'") == key:
                return offset + 1
        return start + 1

    def _header(self, name: str, *, nth: int = 0) -> int | None:
        seen = 0
        for number, line in enumerate(self._lines):
            match = self._HEADER.match(line)
            if match and match["name"].replace('"', "").replace("'", "") == name:
                if seen == nth:
                    return number
                seen += 1
        return None
