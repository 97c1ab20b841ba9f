"""The ``OrderRepository`` contract, run against SQLite (a temp file) and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules
from snapreport.errors import (
    InvalidInput,
    NotOrderOwner,
    OrderAlreadyClosed,
    OrderNotFound,
    OrderStateConflict,
    StoreUnavailable,
)
from snapreport.orders.base import DuplicateQuery, MessageKey, NewReport, Order, OrderRepository
from snapreport.orders.database import parse_url
from snapreport.orders.migrations import VERSION_TABLE, current_revision, head_revision
from snapreport.orders.places import Box, location_key
from snapreport.orders.repository import SqlOrderRepository
from snapreport.orders.tables import SEARCH_INDEXES, Base
from snapreport.outbox import tables as outbox_tables
from snapreport.webhooks import tables as webhook_tables
from snapreport.workflow.texts import load_texts
from tests.harness.clock import FakeClock
from tests.harness.postgres_server import fresh_database, start_postgres

BACKENDS = ["sqlite", "postgresql"]
TABLES = {
    "alarms",
    "work_orders",
    "order_events",
    "order_sources",
    "order_counters",
    VERSION_TABLE,
}
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def orders_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty orders database of the requested backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    async with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening, held by the test)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
async def repo(orders_url: str, clock: FakeClock) -> AsyncIterator[SqlOrderRepository]:
    repository = await SqlOrderRepository.connect(orders_url, clock=clock)
    try:
        yield repository
    finally:
        await repository.aclose()


@pytest.fixture
def desk(repo: SqlOrderRepository, clock: FakeClock) -> Dispatch:
    """The lifecycle over ``repo`` with no rules: reporter or assignee close, as in Part 1."""
    return Dispatch(repo, Rules(), texts=load_texts(), clock=clock)


def leak(
    reporter: str = "alice",
    *,
    assignee: str | None = None,
    location: str = "B2 parking, pillar 17",
    source: str = "chat",
) -> NewReport:
    return NewReport(
        reporter=reporter,
        alarm_type="漏水",
        location=location,
        description="water on the floor",
        image_key="media/2023/11/14/abc.jpg",
        confidence=0.87,
        assignee=assignee,
        source=source,
    )


async def run_sync_on(url: str, fn: Any) -> Any:
    """Run ``fn(sync_connection)`` on a connection of our own, outside the repository."""
    engine = create_async_engine(parse_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)
class TestOrderRepositoryContract:
    async def test_satisfies_the_port(self, repo: SqlOrderRepository) -> None:
        port: OrderRepository = repo
        await port.ping()

    async def test_connect_applies_migrations_and_reconnecting_changes_nothing(
        self, orders_url: str, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        def schema(connection: Connection) -> tuple[set[str], str | None]:
            return set(inspect(connection).get_table_names()), current_revision(connection)

        tables, revision = await run_sync_on(orders_url, schema)
        assert tables >= TABLES
        assert revision == head_revision()

        created = await repo.create(leak())
        again = await SqlOrderRepository.connect(orders_url, clock=clock)
        try:
            assert await again.get(created.number) == created
            assert await run_sync_on(orders_url, schema) == (tables, revision)
        finally:
            await again.aclose()

    async def test_migrated_schema_matches_the_table_definitions(
        self, orders_url: str, repo: SqlOrderRepository
    ) -> None:
        def differences(connection: Connection) -> list[Any]:
            def described(item: Any, name: str | None, kind: str, *_: Any) -> bool:
                # the trigram indexes are PostgreSQL-only and not in the metadata on purpose
                return not (kind == "index" and name in SEARCH_INDEXES)

            context = MigrationContext.configure(
                connection,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "include_object": described,
                },
            )
            assert outbox_tables.OutboxRow.metadata is Base.metadata
            assert webhook_tables.WebhookEndpointRow.metadata is Base.metadata
            return list(compare_metadata(context, Base.metadata))

        assert await run_sync_on(orders_url, differences) == []

    async def test_processes_starting_together_all_succeed(
        self, orders_url: str, clock: FakeClock
    ) -> None:
        repositories = await asyncio.gather(
            *(SqlOrderRepository.connect(orders_url, clock=clock) for _ in range(4))
        )
        try:
            orders = [await r.create(leak()) for r in repositories]
            assert len({order.number for order in orders}) == 4
        finally:
            for repository in repositories:
                await repository.aclose()

    async def test_create_gives_a_dated_number_and_keeps_every_field(
        self, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        created = await repo.create(leak(assignee="bob"))

        assert created.number == "WO-20231114-0001"  # the clock starts at 2023-11-14 22:13 UTC
        assert created.status == "open"
        assert created.alarm_id
        assert created.alarm_type == "漏水"
        assert created.location == "B2 parking, pillar 17"
        assert created.description == "water on the floor"
        assert created.reporter == "alice"
        assert created.assignee == "bob"
        assert created.image_key == "media/2023/11/14/abc.jpg"
        assert created.created_at == datetime.fromtimestamp(clock.now, UTC)
        assert created.created_at.utcoffset() == timedelta(0)
        assert (created.closed_at, created.closed_by, created.close_image_key) == (None,) * 3
        assert (created.close_verified, created.close_note, created.forced) == (None, None, False)
        assert await repo.get(created.number) == created

    async def test_numbers_count_per_utc_day(
        self, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        first = await repo.create(leak())
        second = await repo.create(leak())
        clock.advance(2 * 3600)  # past midnight UTC
        next_day = await repo.create(leak())

        assert [first.number, second.number, next_day.number] == [
            "WO-20231114-0001",
            "WO-20231114-0002",
            "WO-20231115-0001",
        ]

    async def test_get_ignores_case_and_surrounding_spaces(self, repo: SqlOrderRepository) -> None:
        created = await repo.create(leak())

        assert await repo.get(f"  {created.number.lower()} ") == created
        assert await repo.get("ＷＯ－２０２３１１１４－０００１") == created  # full-width input

    async def test_unknown_number_raises_order_not_found_naming_it(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        await repo.create(leak())
        missing = "WO-20231114-0099"

        for attempt in (
            repo.get(missing),
            repo.events(missing),
            desk.check_can_close(missing, "alice"),
            desk.close(
                missing, by="alice", close_image_key=None, verified=None, note="", forced=False
            ),
            repo.record_event(missing, kind="commented", actor="alice", detail="x"),
        ):
            with pytest.raises(OrderNotFound, match=missing):
                await attempt

    async def test_list_filters_by_status_and_by_user_as_reporter_or_assignee(
        self, desk: Dispatch, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        by_alice = await repo.create(leak("alice"))
        clock.advance(1)
        for_alice = await repo.create(leak("carol", assignee="alice"))
        clock.advance(1)
        unrelated = await repo.create(leak("carol", assignee="dave"))
        clock.advance(1)
        closed = await repo.create(leak("alice"))
        await desk.close(
            closed.number, by="alice", close_image_key=None, verified=True, note="", forced=False
        )

        def numbers(orders: Any) -> list[str]:
            return [order.number for order in orders]

        everything = [closed, unrelated, for_alice, by_alice]
        assert numbers(await repo.list()) == numbers(everything)
        assert numbers(await repo.list(status="open")) == numbers(everything[1:])
        assert numbers(await repo.list(status="closed")) == [closed.number]
        assert numbers(await repo.list(user_id="alice")) == numbers([closed, for_alice, by_alice])
        assert numbers(await repo.list(user_id="dave")) == [unrelated.number]
        assert numbers(await repo.list(status="open", user_id="alice")) == numbers(
            [for_alice, by_alice]
        )
        assert numbers(await repo.list(limit=2)) == numbers(everything[:2])
        assert await repo.list(user_id="nobody") == []
        assert numbers(await repo.open_orders_for("alice")) == numbers([for_alice, by_alice])
        assert numbers(await repo.open_orders_for("carol")) == numbers([unrelated, for_alice])
        assert await repo.open_orders_for("nobody") == []

    async def test_has_image_answers_for_the_users_own_orders_only(
        self, repo: SqlOrderRepository, desk: Dispatch
    ) -> None:
        report = NewReport(
            reporter="alice",
            alarm_type="漏水",
            location="B2",
            description="",
            image_key=f"img/{'a' * 64}.jpg",
            assignee="bob",
        )
        order = await repo.create(report)
        carols = await repo.create(
            NewReport("carol", "漏水", "B3", "", image_key=f"img/{'e' * 64}.jpg")
        )
        close_key = f"img/{'c' * 64}.jpg"
        await desk.close(
            order.number, by="bob", close_image_key=close_key, verified=True, note="", forced=False
        )

        for user in ("alice", "bob"):
            assert await repo.has_image(user, report.image_key or "")
            assert await repo.has_image(user, close_key)
        assert not await repo.has_image("carol", close_key)
        assert not await repo.has_image("alice", f"img/{'d' * 64}.jpg")
        assert not await repo.has_image("alice", carols.image_key or "")
        assert await repo.has_image("carol", carols.image_key or "")

    async def test_list_breaks_timestamp_ties_newest_first(self, repo: SqlOrderRepository) -> None:
        created = [await repo.create(leak()) for _ in range(3)]  # same clock reading

        assert [o.number for o in await repo.list()] == [o.number for o in reversed(created)]

    async def test_list_refuses_a_silly_limit(self, repo: SqlOrderRepository) -> None:
        with pytest.raises(InvalidInput):
            await repo.list(limit=0)

    async def test_reporter_and_assignee_may_close(
        self, desk: Dispatch, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        first = await repo.create(leak("alice", assignee="bob"))
        second = await repo.create(leak("alice", assignee="bob"))
        clock.advance(60)

        assert (await desk.check_can_close(first.number, "alice")).number == first.number
        assert (await desk.check_can_close(second.number, "bob")).number == second.number
        by_reporter = await desk.close(
            first.number, by="alice", close_image_key="media/fixed.jpg", verified=True,
            note="dried up", forced=False,
        )  # fmt: skip
        by_assignee = await desk.close(
            second.number.lower(), by="bob", close_image_key=None, verified=None,
            note="", forced=False,
        )  # fmt: skip

        closed_at = datetime.fromtimestamp(clock.now, UTC)
        assert by_reporter.status == by_assignee.status == "closed"
        assert (by_reporter.closed_by, by_assignee.closed_by) == ("alice", "bob")
        assert by_reporter.closed_at == by_assignee.closed_at == closed_at
        assert by_reporter.close_image_key == "media/fixed.jpg"
        assert by_reporter.close_note == "dried up"
        assert await repo.get(first.number) == by_reporter
        assert await repo.get(second.number) == by_assignee
        assert await repo.open_orders_for("alice") == []

    async def test_someone_else_cannot_close_and_nothing_changes(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(leak("alice", assignee="bob"))
        events_before = await repo.events(created.number)

        with pytest.raises(NotOrderOwner, match=created.number):
            await desk.check_can_close(created.number, "mallory")
        with pytest.raises(NotOrderOwner):
            await desk.close(
                created.number, by="mallory", close_image_key="x.jpg", verified=True,
                note="mine now", forced=True,
            )  # fmt: skip

        assert await repo.get(created.number) == created
        assert await repo.events(created.number) == events_before

    async def test_a_closed_order_cannot_be_closed_again(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(leak("alice", assignee="bob"))
        closed = await desk.close(
            created.number, by="alice", close_image_key=None, verified=True, note="", forced=False
        )

        with pytest.raises(OrderAlreadyClosed, match=created.number):
            await desk.check_can_close(created.number, "bob")
        with pytest.raises(OrderAlreadyClosed):
            await desk.close(
                created.number, by="bob", close_image_key=None, verified=False, note="again",
                forced=True,
            )  # fmt: skip
        assert await repo.get(created.number) == closed

    async def test_concurrent_closes_close_exactly_once(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(leak("alice", assignee="bob"))

        results = await asyncio.gather(
            *(
                desk.close(
                    created.number,
                    by=user,
                    close_image_key=None,
                    verified=True,
                    note=f"closed by {user}",
                    forced=False,
                )
                for user in ("alice", "bob") * 3
            ),
            return_exceptions=True,
        )

        winners = [r for r in results if isinstance(r, Order)]
        losers = [r for r in results if not isinstance(r, Order)]
        assert len(winners) == 1
        assert all(isinstance(r, OrderAlreadyClosed) for r in losers), losers
        closes = [e for e in await repo.events(created.number) if e.kind == "closed"]
        assert len(closes) == 1
        assert closes[0].actor == winners[0].closed_by
        assert await repo.get(created.number) == winners[0]

    async def test_a_message_creates_at_most_one_order(self, repo: SqlOrderRepository) -> None:
        message = MessageKey("api", "alice", "m-1")
        keyed = replace(leak(), message=message)
        results = await asyncio.gather(*(repo.create(keyed) for _ in range(6)))
        assert len({order.number for order in results}) == 1
        again = await repo.create(keyed)
        assert again == results[0]
        assert len(await repo.list()) == 1
        assert await repo.written_by(message) == ("create", again)
        created = [e for e in await repo.events(again.number) if e.kind == "created"]
        assert len(created) == 1

    async def test_concurrent_merges_each_add_their_reporter_and_photos_once(
        self, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(replace(leak(), more_image_keys=("media/a2.jpg",)))
        assert created.image_keys == ("media/2023/11/14/abc.jpg", "media/a2.jpg")
        reports = [
            replace(
                leak(f"u{i}"),
                image_key=f"media/u{i}-1.jpg",
                more_image_keys=(f"media/u{i}-2.jpg",),
                message=MessageKey("api", f"u{i}", "add"),
            )
            for i in range(6)
        ]
        # each message twice at once: six merges, none twice
        results = await asyncio.gather(*(repo.merge(created.number, r) for r in reports * 2))
        assert {order.number for order in results} == {created.number}
        merged = await repo.get(created.number)
        assert sorted(merged.also_reported_by) == [f"u{i}" for i in range(6)]
        assert len(merged.image_keys) == 2 + 12
        assert len(set(merged.image_keys)) == 14
        assert merged.image_keys[:2] == created.image_keys
        events = [e.kind for e in await repo.events(created.number)]
        assert events.count("merged_report") == 6
        assert await repo.written_by(MessageKey("api", "u3", "add")) == ("merge", merged)
        for i in range(6):
            assert await repo.has_image(f"u{i}", "media/a2.jpg")
        assert not await repo.has_image("nobody", "media/a2.jpg")

    async def test_a_merge_into_a_closed_order_is_refused_and_writes_nothing(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(leak("alice"))
        await desk.close(
            created.number, by="alice", close_image_key=None, verified=None, note="", forced=False
        )
        with pytest.raises(OrderStateConflict):
            await repo.merge(
                created.number, replace(leak("bob"), message=MessageKey("api", "bob", "m"))
            )
        after = await repo.get(created.number)
        assert (after.also_reported_by, after.image_keys) == ((), created.image_keys)
        assert await repo.written_by(MessageKey("api", "bob", "m")) is None

    async def test_a_merge_racing_a_close_is_either_before_or_refused(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        for round_ in range(5):
            created = await repo.create(leak("alice"))
            results = await asyncio.gather(
                repo.merge(created.number, leak(f"bob{round_}")),
                desk.close(
                    created.number, by="alice", close_image_key=None, verified=None, note="",
                    forced=False,
                ),
                return_exceptions=True,
            )  # fmt: skip
            closed = await repo.get(created.number)
            assert closed.status == "closed"
            kinds = [e.kind for e in await repo.events(created.number)]
            if isinstance(results[0], Order):  # merged first: the close came after
                assert kinds.index("merged_report") < kinds.index("closed")
                assert closed.also_reported_by == (f"bob{round_}",)
            else:
                assert isinstance(results[0], OrderStateConflict), results[0]
                assert "merged_report" not in kinds
                assert closed.also_reported_by == ()

    async def test_duplicates_are_found_by_type_time_place_text_or_box(
        self, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        near = await repo.create(replace(leak(), latitude=31.2304, longitude=121.4737))
        texted = await repo.create(replace(leak(), location="Ｂ２ Parking, pillar 9!"))
        await repo.create(
            replace(leak(), alarm_type="垃圾堆放", latitude=31.2304, longitude=121.4737)
        )
        now = datetime.fromtimestamp(clock(), UTC)
        since = now - timedelta(days=7)
        box = Box.around(31.2305, 121.4737, 50.0)
        found = await repo.duplicates(
            DuplicateQuery("漏水", since, location_key=location_key("b2 parking pillar 9"), box=box)
        )
        assert [o.number for o in found] == [texted.number, near.number]
        assert (
            await repo.duplicates(DuplicateQuery("漏水", now + timedelta(seconds=1), box=box)) == []
        )
        assert await repo.duplicates(DuplicateQuery("漏水", since)) == []  # no place: nothing

    async def test_message_keys_differ_by_channel_user_and_id(
        self, repo: SqlOrderRepository
    ) -> None:
        keys = [
            MessageKey("api", "alice", "m-1"),
            MessageKey("wecom", "alice", "m-1"),
            MessageKey("api", "bob", "m-1"),
            MessageKey("api", "alice", "m-2"),
        ]
        orders = [await repo.create(replace(leak(), message=key)) for key in keys]
        assert len({order.number for order in orders}) == 4
        unkeyed = [await repo.create(leak()) for _ in range(2)]
        assert unkeyed[0].number != unkeyed[1].number
        assert await repo.written_by(MessageKey("api", "alice", "m-3")) is None

    async def test_a_message_closes_at_most_once_and_its_retry_gets_that_close(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        created = await repo.create(leak("alice"))
        message = MessageKey("api", "alice", "c-1")

        async def close() -> Order:
            return await desk.close(
                created.number, by="alice", close_image_key=None, verified=True,
                note="fixed", forced=False, message=message,
            )  # fmt: skip

        first = await asyncio.gather(*(close() for _ in range(4)))
        closed = first[0]
        assert all(order.number == closed.number for order in first)
        assert await close() == closed  # not OrderAlreadyClosed: it is this message's close
        assert await repo.written_by(message) == ("close", closed)
        closes = [e for e in await repo.events(created.number) if e.kind == "closed"]
        assert len(closes) == 1
        with pytest.raises(OrderAlreadyClosed):
            await desk.close(
                created.number, by="alice", close_image_key=None, verified=True,
                note="again", forced=False, message=MessageKey("api", "alice", "c-2"),
            )  # fmt: skip

    async def test_a_message_key_used_for_the_other_action_is_refused(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        message = MessageKey("api", "alice", "m-1")
        created = await repo.create(replace(leak("alice"), message=message))
        with pytest.raises(InvalidInput, match="m-1"):
            await desk.close(
                created.number, by="alice", close_image_key=None, verified=None,
                note="", forced=False, message=message,
            )  # fmt: skip
        assert (await repo.get(created.number)).status == "open"

    async def test_fifty_concurrent_creates_get_fifty_distinct_numbers(
        self, repo: SqlOrderRepository
    ) -> None:
        orders = await asyncio.gather(*(repo.create(leak(f"user{i}")) for i in range(50)))

        numbers = sorted(order.number for order in orders)
        assert numbers == [f"WO-20231114-{i:04d}" for i in range(1, 51)]
        assert len(await repo.list(limit=100)) == 50

    async def test_event_log_keeps_kind_actor_and_detail_in_order(
        self, desk: Dispatch, repo: SqlOrderRepository, clock: FakeClock
    ) -> None:
        created = await repo.create(leak("alice", assignee="bob"))
        clock.advance(30)
        await repo.record_event(
            created.number.lower(), kind="close_photo_rejected", actor="bob",
            detail="the photo still shows water",
        )  # fmt: skip
        clock.advance(30)
        await desk.close(
            created.number, by="bob", close_image_key="fixed.jpg", verified=False,
            note="fixed, the model disagrees", forced=True,
        )  # fmt: skip

        events = await repo.events(created.number)
        assert [(e.kind, e.actor) for e in events] == [
            ("created", "alice"),
            ("assigned", "system"),
            ("close_photo_rejected", "bob"),
            ("closed", "bob"),
        ]
        assert "漏水" in events[0].detail
        assert events[1].detail == "bob"
        assert events[2].detail == "the photo still shows water"
        assert "fixed, the model disagrees" in events[3].detail
        assert "forced" in events[3].detail
        assert {e.order_number for e in events} == {created.number}
        start = datetime.fromtimestamp(clock.now - 60, UTC)
        assert [e.at for e in events] == [start + timedelta(seconds=s) for s in (0, 0, 30, 60)]

    async def test_forced_close_and_verification_are_stored(
        self, desk: Dispatch, repo: SqlOrderRepository
    ) -> None:
        forced = await repo.create(leak())
        verified = await repo.create(leak())
        await desk.close(
            forced.number, by="alice", close_image_key="f.jpg", verified=False,
            note="the model is wrong", forced=True,
        )  # fmt: skip
        await desk.close(
            verified.number, by="alice", close_image_key="v.jpg", verified=True, note="",
            forced=False,
        )  # fmt: skip

        stored_forced = await repo.get(forced.number)
        stored_verified = await repo.get(verified.number)
        assert (stored_forced.forced, stored_forced.close_verified) == (True, False)
        assert stored_forced.close_note == "the model is wrong"
        assert (stored_verified.forced, stored_verified.close_verified) == (False, True)

    async def test_an_external_system_may_create_an_assigned_order(
        self, desk: Dispatch, orders_url: str, repo: SqlOrderRepository
    ) -> None:
        report = NewReport(
            reporter="alarm-system",
            alarm_type="消防设施损坏",
            location="Building 3, stair B",
            description="smoke detector offline",
            image_key=None,
            assignee="tech-7",
            source="api",
        )
        created = await repo.create(report)

        assert (created.reporter, created.assignee, created.image_key) == (
            "alarm-system",
            "tech-7",
            None,
        )
        assert [o.number for o in await repo.open_orders_for("tech-7")] == [created.number]
        closed = await desk.close(
            created.number, by="tech-7", close_image_key="done.jpg", verified=True, note="",
            forced=False,
        )  # fmt: skip
        assert closed.closed_by == "tech-7"

        def stored_source(connection: Connection) -> Any:
            return connection.execute(text("SELECT source, confidence FROM alarms")).one()

        assert tuple(await run_sync_on(orders_url, stored_source)) == ("api", None)

    async def test_bad_input_is_refused_and_nothing_is_stored(
        self, repo: SqlOrderRepository
    ) -> None:
        with pytest.raises(InvalidInput):
            await repo.create(leak("x" * 500))
        with pytest.raises(InvalidInput):
            await repo.create(leak(" "))

        assert await repo.list() == []

    async def test_an_unreachable_database_raises_store_unavailable(
        self, orders_url: str, tmp_path: Path, refused_port: int
    ) -> None:
        if orders_url.startswith("sqlite"):
            blocker = tmp_path / "not-a-directory"
            blocker.write_text("")
            url = f"sqlite+aiosqlite:///{blocker / 'orders.db'}"
        else:
            url = f"postgresql+asyncpg://snap:s3cr3t-pw@127.0.0.1:{refused_port}/orders"

        with pytest.raises(StoreUnavailable) as caught:
            await SqlOrderRepository.connect(url, connect_timeout=5)
        assert "s3cr3t-pw" not in str(caught.value)
        assert "unavailable" in str(caught.value) or "cannot" in str(caught.value)


async def test_store_going_away_raises_store_unavailable_then_recovers() -> None:
    server = start_postgres()
    try:
        repo = await SqlOrderRepository.connect(server.admin_url)
        try:
            created = await repo.create(leak())
            server.stop()
            with pytest.raises(StoreUnavailable):
                await repo.ping()
            with pytest.raises(StoreUnavailable):
                await repo.get(created.number)
            server.start()
            await repo.ping()
            assert (await repo.get(created.number)).number == created.number
        finally:
            await repo.aclose()
    finally:
        server.destroy()


STARTER = """
import asyncio, sys
from snapreport.dispatch.lifecycle import Dispatch
from snapreport.dispatch.rules import Rules
from snapreport.orders.base import NewReport
from snapreport.orders.repository import SqlOrderRepository

async def main() -> None:
    repo = await SqlOrderRepository.connect(sys.argv[1])
    order = await repo.create(NewReport("p", "漏水", "B1", "d", None))
    print(order.number)
    await repo.aclose()

asyncio.run(main())
"""


@pytest.mark.parametrize("orders_url", BACKENDS, indirect=True)
async def test_two_processes_starting_at_once_both_work(orders_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            STARTER,
            orders_url,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await process.communicate() for process in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    numbers = {stdout.decode().strip() for stdout, _ in outputs}
    assert len(numbers) == 2
