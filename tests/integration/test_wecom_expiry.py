"""The proactive expiry notice: timers on every backend, the notifier's decisions, and the
notice sent exactly once by two workers sharing Redis or SQLite, and after a restart."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image

from snapreport.app import App
from snapreport.bootstrap import build
from snapreport.channels.wecom.expiry import ExpiryNotifier, notice_text
from snapreport.session.model import ExpiredSession, Slots
from snapreport.timers.base import ExpiryTimers
from snapreport.timers.memory import MemoryExpiryTimers
from snapreport.timers.redis import RedisExpiryTimers
from snapreport.timers.sqlite import SqliteExpiryTimers
from snapreport.workflow.events import ImageEvent, LocationEvent, TextEvent
from tests.harness.clock import FakeClock
from tests.harness.fake_wecom import FakeWeCom, WeComPusher, wecom_app, wecom_settings
from tests.integration.live_server import live_server

USER = "zhangsan"
REPORT_NOTICE = "您有一条未完成的上报"
DIALOGUE_EXPIRY = "之前待提交的上报已自动取消"  # what the dialogue says at the next message


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


# -- the timers, on every backend -------------------------------------------------------------


def _timer_factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of timer stores that share one backend (as workers would)."""
    if kind == "memory":
        shared = MemoryExpiryTimers()
        return lambda: shared
    if kind == "sqlite":
        return lambda: SqliteExpiryTimers(tmp_path / "sessions.db")
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisExpiryTimers.from_url(url, prefix=prefix)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def timer_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return _timer_factory(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def durable_timer_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return _timer_factory(request.param, request, tmp_path)


@pytest.fixture
async def timers(timer_factory: Any) -> AsyncIterator[ExpiryTimers]:
    store: ExpiryTimers = timer_factory()
    yield store
    await store.aclose()


async def test_a_timer_is_claimed_once_when_due(timers: ExpiryTimers) -> None:
    await timers.schedule("a", 100.0)
    assert await timers.claim_due(99.9, 10) == []
    assert await timers.claim_due(100.0, 10) == ["a"]
    assert await timers.claim_due(200.0, 10) == []


async def test_scheduling_again_replaces_the_timer(timers: ExpiryTimers) -> None:
    await timers.schedule("a", 100.0)
    await timers.schedule("a", 200.0)
    assert await timers.claim_due(150.0, 10) == []
    assert await timers.claim_due(200.0, 10) == ["a"]
    assert await timers.claim_due(300.0, 10) == []


async def test_a_cancelled_timer_never_fires(timers: ExpiryTimers) -> None:
    await timers.schedule("a", 100.0)
    await timers.cancel("a")
    await timers.cancel("never-scheduled")
    assert await timers.claim_due(1_000.0, 10) == []


async def test_the_earliest_are_claimed_first_within_the_limit(timers: ExpiryTimers) -> None:
    for i, user in enumerate(["e", "d", "c", "b", "a"]):
        await timers.schedule(user, 100.0 - i)
    # the earliest are claimed first (in no particular order within one claim)
    assert sorted(await timers.claim_due(1_000.0, 2)) == ["a", "b"]
    assert sorted(await timers.claim_due(1_000.0, 10)) == ["c", "d", "e"]


async def test_competing_workers_claim_each_timer_exactly_once(timer_factory: Any) -> None:
    workers: list[ExpiryTimers] = [timer_factory() for _ in range(3)]
    try:
        users = [f"user{i:03d}" for i in range(150)]
        for i, user in enumerate(users):
            await workers[i % 3].schedule(user, float(i))

        async def drain(store: ExpiryTimers) -> list[str]:
            claimed: list[str] = []
            while batch := await store.claim_due(10_000.0, 7):
                claimed += batch
                await asyncio.sleep(0)
            return claimed

        results = await asyncio.gather(*(drain(w) for w in workers))
        everything = [user for claimed in results for user in claimed]
        assert sorted(everything) == users  # none lost, none twice
    finally:
        for store in workers:
            await store.aclose()


async def test_timers_survive_a_restart(durable_timer_factory: Any) -> None:
    before: ExpiryTimers = durable_timer_factory()
    await before.schedule("a", 100.0)
    await before.aclose()
    after: ExpiryTimers = durable_timer_factory()
    try:
        assert await after.claim_due(100.0, 10) == ["a"]
    finally:
        await after.aclose()


# -- the notifier's decisions (one process, a manual clock) ------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def __call__(self, user_id: str, text: str) -> None:
        self.sent.append((user_id, text))


@pytest.fixture
async def ctx(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    settings = wecom_settings(tmp_path, "http://127.0.0.1:9", session={"ttl_seconds": 600})
    async with build(settings, clock=clock) as app:
        yield app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def notifier(ctx: App, recorder: Recorder, clock: FakeClock) -> ExpiryNotifier:
    return ExpiryNotifier(MemoryExpiryTimers(), ctx.engine, recorder, clock=clock)


async def turn(ctx: App, notifier: ExpiryNotifier, event: Any, user: str = USER) -> str:
    outcome = await ctx.assistant.handle(user, event)
    await notifier.after_turn(user, outcome.state)
    return "\n\n".join(r.text for r in outcome.replies)


async def test_a_pending_report_that_expires_gets_one_notice(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    clock.advance(599)
    assert await notifier.run_once() == 0
    clock.advance(2)
    assert await notifier.run_once() == 1
    [(user, text)] = recorder.sent
    assert user == USER
    assert REPORT_NOTICE in text
    assert "10 分钟" in text
    assert await notifier.run_once() == 0
    clock.advance(3_600)
    assert await notifier.run_once() == 0
    assert len(recorder.sent) == 1


async def test_the_notice_speaks_the_language_the_user_chose(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, TextEvent("English"))
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    await turn(ctx, notifier, TextEvent("中文"), user="lisi")
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"), user="lisi")
    clock.advance(601)
    assert await notifier.run_once() == 2
    sent = dict(recorder.sent)
    assert "pending report" in sent[USER]
    assert "10 minutes" in sent[USER]
    assert REPORT_NOTICE in sent["lisi"]


async def test_after_the_notice_the_next_message_does_not_repeat_it(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    clock.advance(601)
    assert await notifier.run_once() == 1
    reply = await turn(ctx, notifier, TextEvent("帮助"))
    assert DIALOGUE_EXPIRY not in reply
    assert "发送一张现场照片" in reply


async def test_without_the_notifier_the_dialogue_says_it_at_the_next_message(
    ctx: App, notifier: ExpiryNotifier, clock: FakeClock
) -> None:
    # the control for the test above: the reset is what keeps the dialogue from repeating it
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    clock.advance(601)
    reply = await turn(ctx, notifier, TextEvent("帮助"))
    assert DIALOGUE_EXPIRY in reply


async def test_a_user_who_came_back_is_not_notified_early(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    clock.advance(300)
    await turn(ctx, notifier, LocationEvent(23.1, 113.2, "南门"))  # now waiting_confirm
    clock.advance(301)  # the first timer's time: the session is still live
    assert await notifier.run_once() == 0
    clock.advance(300)
    assert await notifier.run_once() == 1
    assert REPORT_NOTICE in recorder.sent[0][1]


async def test_a_user_active_elsewhere_moves_the_timer(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    clock.advance(300)
    # a turn through another channel: the session moves on, this notifier is not told
    await ctx.assistant.handle(USER, TextEvent("南门岗亭"))
    clock.advance(301)
    assert await notifier.run_once() == 0  # not expired: the timer moves to the new expiry
    clock.advance(300)
    assert await notifier.run_once() == 1


async def test_a_finished_report_has_no_notice(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    await turn(ctx, notifier, TextEvent("取消"))
    clock.advance(3_600)
    assert await notifier.run_once() == 0
    assert recorder.sent == []


async def test_a_pending_close_gets_its_own_notice(
    ctx: App, notifier: ExpiryNotifier, recorder: Recorder, clock: FakeClock
) -> None:
    await turn(ctx, notifier, ImageEvent(jpeg(), "image/jpeg"))
    await turn(ctx, notifier, TextEvent("3号楼楼梯间"))
    await turn(ctx, notifier, TextEvent("确认"))
    [order] = await ctx.orders.open_orders_for(USER)
    reply = await turn(ctx, notifier, TextEvent(f"结单 {order.number}"))
    assert order.number in reply
    clock.advance(601)
    assert await notifier.run_once() == 1
    [(_, text)] = recorder.sent
    assert f"工单 {order.number} 的结单" in text


class SwallowingTimers(MemoryExpiryTimers):
    """Timers whose claim eats a cancellation, as a driver that shields its commands does."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def claim_due(self, now: float, limit: int) -> list[str]:
        self.entered.set()
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(3_600)
        return []


async def test_the_poller_stops_even_when_a_driver_eats_the_cancellation(
    ctx: App, recorder: Recorder
) -> None:
    timers = SwallowingTimers()
    poller = asyncio.create_task(
        ExpiryNotifier(timers, ctx.engine, recorder, poll_seconds=3_600).run()
    )
    await timers.entered.wait()
    poller.cancel()
    done, _ = await asyncio.wait({poller}, timeout=10)
    assert poller in done
    assert poller.cancelled()


def test_notice_texts_in_both_languages() -> None:
    report = ExpiredSession("waiting_confirm", Slots(), 0.0)
    close = ExpiredSession("waiting_close_photo", Slots(order_id="20260101-0001"), 0.0)
    assert "10 minutes" in notice_text(report, ttl_seconds=600, language="en")
    assert "pending report" in notice_text(report, ttl_seconds=600, language="en")
    assert "20260101-0001" in notice_text(close, ttl_seconds=600, language="en")
    assert "30 秒" in notice_text(report, ttl_seconds=30, language="zh-CN")
    assert "20260101-0001" in notice_text(close, ttl_seconds=600, language="zh-CN")


# -- two workers, one backend: the notice goes out once -----------------------------------------


def two_workers(
    stack: ExitStack, settings: Any, *, polls: tuple[float, float] = (0.2, 0.2)
) -> list[WeComPusher]:
    pushers = []
    for poll in polls:
        url = stack.enter_context(live_server(wecom_app(settings, poll_seconds=poll)))
        pusher = WeComPusher(f"{url}/wecom/callback")
        stack.callback(pusher.close)
        pushers.append(pusher)
    return pushers


def expect_one_notice(fake_wecom: FakeWeCom) -> None:
    sent = fake_wecom.wait_for_sent(2, timeout=30)
    assert REPORT_NOTICE in sent[1]["text"]["content"]
    assert sent[1]["touser"] == USER
    # both workers poll every 0.2 s: give them many rounds to send a duplicate
    time.sleep(1.5)
    assert len(fake_wecom.sent) == 2


def test_two_workers_on_redis_send_the_notice_once(
    tmp_path: Path, fake_wecom: FakeWeCom, redis_url: str, redis_prefix: str
) -> None:
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        session={
            "backend": "redis",
            "url": redis_url,
            "key_prefix": redis_prefix,
            "ttl_seconds": 1.5,
        },
    )
    fake_wecom.add_media("photo", jpeg())
    with ExitStack() as stack:
        first, _ = two_workers(stack, settings)
        assert first.push(first.image_xml(USER, "photo")).status_code == 200
        expect_one_notice(fake_wecom)
        assert "照片已收到" in fake_wecom.sent_texts()[0]
    timers = redis.Redis.from_url(redis_url)
    try:
        assert timers.zcard(f"{redis_prefix}:wecom:expiry") == 0
    finally:
        timers.close()


def test_two_workers_on_sqlite_send_the_notice_once(tmp_path: Path, fake_wecom: FakeWeCom) -> None:
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        session={"backend": "sqlite", "url": str(tmp_path / "sessions.db"), "ttl_seconds": 1.5},
    )
    fake_wecom.add_media("photo", jpeg())
    with ExitStack() as stack:
        _, second = two_workers(stack, settings)
        assert second.push(second.image_xml(USER, "photo")).status_code == 200
        expect_one_notice(fake_wecom)


def test_the_timer_survives_a_restart(tmp_path: Path, fake_wecom: FakeWeCom) -> None:
    settings = wecom_settings(
        tmp_path,
        fake_wecom.url,
        session={"backend": "sqlite", "url": str(tmp_path / "sessions.db"), "ttl_seconds": 1.0},
    )
    fake_wecom.add_media("photo", jpeg())
    # the first worker never polls after starting, so only a timer kept on disk can fire
    with live_server(wecom_app(settings, poll_seconds=3_600)) as url:
        pusher = WeComPusher(f"{url}/wecom/callback")
        try:
            assert pusher.push(pusher.image_xml(USER, "photo")).status_code == 200
            fake_wecom.wait_for_sent(1)
        finally:
            pusher.close()
    assert len(fake_wecom.sent) == 1
    with live_server(wecom_app(settings, poll_seconds=0.2)):
        sent = fake_wecom.wait_for_sent(2, timeout=30)
    assert REPORT_NOTICE in sent[1]["text"]["content"]
