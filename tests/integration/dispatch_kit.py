"""Dispatch test helpers: the rules of the examples, a lifecycle on a real orders database,
and a look at the outbox rows a change wrote."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules, parse_rules
from snapreport.orders.base import NewReport
from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.tables import OutboxRow
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock

RULES = """\
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
accept_within = "10m"
resolve_within = "1d"

[default]
team = "fire"
accept_within = "2h"
resolve_within = "24h"

[roles]
dispatchers = ["dispatcher1"]
admins = ["root"]
"""
# twenty members, for claim races
CROWD = [f"m{i:02d}" for i in range(20)]
RACE_RULES = RULES.replace('members = ["lisi", "wangwu"]', f"members = {json.dumps(CROWD)}")


@dataclass(frozen=True, slots=True)
class Message:
    """An outbox row as dispatch wrote it."""

    id: int
    topic: str
    payload: dict[str, Any]
    due_at: datetime


@dataclass(slots=True)
class Desk:
    """A lifecycle on a real database, its repository and clock."""

    dispatch: Dispatch
    repo: SqlOrderRepository
    clock: FakeClock

    async def outbox(self, topic: str | None = None, *, after: int = 0) -> list[Message]:
        """The outbox rows (of ``topic``) with an id above ``after``, oldest first."""
        return await outbox_rows(self.repo.engine, topic, after=after)

    async def last_id(self) -> int:
        rows = await self.outbox()
        return rows[-1].id if rows else 0

    async def report(
        self,
        alarm_type: str = "消防通道堵塞",
        location: str = "A区北门",
        *,
        reporter: str = "alice",
    ) -> Any:
        return await self.dispatch.create(
            NewReport(
                reporter=reporter,
                alarm_type=alarm_type,
                location=location,
                description="通道被杂物堵住",
                image_key="media/before.jpg",
            )
        )


async def outbox_rows(engine: AsyncEngine, topic: str | None, *, after: int = 0) -> list[Message]:
    query = select(OutboxRow).where(OutboxRow.id > after).order_by(OutboxRow.id)
    if topic is not None:
        query = query.where(OutboxRow.topic == topic)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [Message(r.id, r.topic, json.loads(r.payload), r.due_at) for r in rows]


@asynccontextmanager
async def desk(
    url: str, clock: FakeClock, *, rules: str = RULES, language: str = "zh-CN"
) -> AsyncIterator[Desk]:
    repo = await SqlOrderRepository.connect(url, clock=clock)
    parsed: Rules = parse_rules(rules)
    try:
        yield Desk(Dispatch(repo, parsed, texts=load_texts(language), clock=clock), repo, clock)
    finally:
        await repo.aclose()
