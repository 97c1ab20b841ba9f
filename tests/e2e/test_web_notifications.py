"""The web page shows a user's order notifications as they arrive (it polls for them)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from playwright.sync_api import Browser, expect

from snapreport.orders.repository import SqlOrderRepository
from snapreport.outbox.sqlalchemy import SqlOutboxStore, enqueue
from tests.e2e.conftest import Served
from tests.e2e.test_web_chat import DESKTOP, USER, new_context, open_chat, transcript
from tests.harness.outbox_kit import order_message

pytestmark = pytest.mark.e2e


def announce(served: Served, number: str, text: str) -> None:
    """Commit an order message for ``USER`` to the served app's database, as dispatch would
    (in a thread of its own: the browser's driver owns this thread's event loop)."""

    async def commit() -> None:
        repo = await SqlOrderRepository.connect(served.settings.orders.url)
        try:
            store = SqlOutboxStore(repo.engine)
            async with store.sessions() as session, session.begin():
                enqueue(session, order_message(number, recipients=[USER], text=text))
        finally:
            await repo.aclose()

    thread = threading.Thread(target=asyncio.run, args=(commit(),))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()


def test_a_notification_appears_in_the_chat_without_a_reload(
    browser: Browser, served: Served
) -> None:
    context = new_context(browser, DESKTOP)
    page = open_chat(context, served)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")

    announce(served, "WO-20261129-0042", "工单 WO-20261129-0042 已被 lisi 接单")

    notice = transcript(page).locator(".notification")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("工单 WO-20261129-0042 已被 lisi 接单")
    expect(notice).to_contain_text("通知")
    context.close()
