"""The staff console (``/console``) in a real browser, on a phone-sized and a desk-sized screen.

One server for the module, with the example routing rules (teams ``fire`` and ``property``), the
service and admin tokens set (so the page needs a browser session) and a known data set filed
in the past with a manual clock, so the dashboard's numbers are known. People sign in with
one-time links, as ``登录`` issues them. Orders the tests act on are filed through the admin API
as the test goes.

Set ``CONSOLE_SCREENSHOTS=1`` to also write the list, detail and dashboard screenshots of the
user guide (``docs/img/console-*.png``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    ViewportSize,
    expect,
)

from snapreport.config import Settings
from tests.e2e.conftest import ARTIFACTS, REPO_ROOT, issue_link
from tests.harness.clock import FakeClock
from tests.integration.dispatch_kit import RULES, desk
from tests.integration.http_kit import jpeg_bytes, png_bytes
from tests.integration.live_server import live_server, local_settings

pytestmark = pytest.mark.e2e
expect.set_options(timeout=20_000)

API_TOKEN = "console-service-token"
ADMIN_TOKEN = "console-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PHONE = ViewportSize(width=390, height=844)
DESK = ViewportSize(width=1440, height=900)
SCREENS = {"phone": PHONE, "desk": DESK}
SHOTS = REPO_ROOT / "docs" / "img"
TIMEZONE = "Asia/Shanghai"
EVENTS = "**/api/v1/events"
PAGE = 50  # the console's page size
DELIVERY_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class Console:
    url: str
    settings: Settings
    seeded: dict[str, str]  # name in the data set -> order number


def _run(coroutine: Any) -> Any:
    # Playwright's sync API runs an event loop in this thread: run ours in another one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from snapreport.channels.http import create_app

    tmp = tmp_path_factory.mktemp("console")
    rules = tmp / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    settings = local_settings(
        tmp,
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        session={"backend": "sqlite"},
        dispatch={"rules_file": str(rules)},
    )
    seeded = _run(_seed(settings.orders.url))
    with live_server(create_app(settings)) as url:
        yield Console(url, settings, seeded)


async def _seed(url: str) -> dict[str, str]:
    """The known data set: three days in November 2026 (Asia/Shanghai)."""
    clock = FakeClock(_at("2026-11-01T09:00:00+08:00"))
    numbers: dict[str, str] = {}
    async with desk(url, clock) as d:
        # day 1: two fire orders and one property order
        numbers["a"] = (await d.report("消防通道堵塞", "A区北门")).number
        numbers["b"] = (await d.report("消防设施损坏", "A区东门")).number
        numbers["c"] = (await d.report("垃圾堆放", "B区车库")).number
        clock.advance(10 * 60)
        await d.dispatch.accept(numbers["a"], "lisi")
        clock.advance(50 * 60)
        await d.dispatch.close(
            numbers["a"],
            by="lisi",
            close_image_key=None,
            verified=None,
            note="已清理",
            forced=False,
        )
        # day 2
        clock.now = _at("2026-11-02T10:00:00+08:00")
        numbers["d"] = (await d.report("消防通道堵塞", "A区北门")).number
        clock.advance(20 * 60)
        await d.dispatch.accept(numbers["d"], "wangwu")
        await d.dispatch.reject(numbers["c"], "pmlead", "重复上报")
        # day 3
        clock.now = _at("2026-11-03T15:00:00+08:00")
        numbers["e"] = (await d.report("垃圾堆放", "B区车库", reporter="bob")).number
        await d.dispatch.close(
            numbers["d"],
            by="wangwu",
            close_image_key=None,
            verified=None,
            note="修好了",
            forced=False,
        )
    return numbers


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).astimezone(UTC).timestamp()


def file_order(
    console: Console, location: str, alarm_type: str = "消防通道堵塞", **extra: Any
) -> dict[str, Any]:
    image = {"data": base64.b64encode(png_bytes()).decode(), "mime": "image/png"}
    answer = httpx.post(
        f"{console.url}/api/v1/orders",
        json={
            "alarm_type": alarm_type,
            "location": location,
            "description": f"{location} 需要处理",
            "reporter": "alice",
            "image": image,
            **extra,
        },
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def chat_report(console: Console, location: str, widths: tuple[int, ...]) -> str:
    """A report of a blocked exit with one photo per width (``再发一张`` before each further
    one), through the chat as alice; the new order's number."""
    sent: list[dict[str, Any]] = []

    def send(**body: Any) -> dict[str, Any]:
        answer = httpx.post(
            f"{console.url}/api/v1/messages",
            json={"user_id": "alice", "message_id": uuid.uuid4().hex, **body},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
        sent.append(answer.json())
        return sent[-1]

    for i, width in enumerate(widths):
        if i:
            send(text="再发一张")
        send(image={"data": base64.b64encode(png_bytes(width, 24)).decode(), "mime": "image/png"})
    send(text="类型 消防通道堵塞")
    send(text=location)
    order = send(text="确认")["order"]
    assert len(order["image_keys"]) == len(widths), order
    number: str = order["number"]
    return number


class SignIn(Protocol):
    def __call__(
        self,
        user: str,
        screen: str = "desk",
        *,
        locale: str = "zh-CN",
        before: Callable[[BrowserContext], None] | None = None,
    ) -> tuple[Page, list[str]]: ...


@pytest.fixture
def sign_in(browser: Browser, console: Console) -> Iterator[SignIn]:
    """Open browser contexts signed in as someone through a one-time link, on the console;
    closed after the test whatever happens (an open live stream would hold the server)."""
    contexts: list[BrowserContext] = []

    def open_as(
        user: str,
        screen: str = "desk",
        *,
        locale: str = "zh-CN",
        before: Callable[[BrowserContext], None] | None = None,
    ) -> tuple[Page, list[str]]:
        context = browser.new_context(
            viewport=SCREENS[screen],
            locale=locale,
            timezone_id=TIMEZONE,
            is_mobile=screen == "phone",
            has_touch=screen == "phone",
        )
        contexts.append(context)
        if before is not None:
            before(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # the page (Chart.js included) keeps to the Content-Security-Policy: no inline style
        page.on(
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        link = issue_link(console.settings, user)
        page.goto(f"{console.url}{link}?next=/console")
        ready(page)
        return page, errors

    yield open_as
    for context in contexts:
        context.close()


def ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def row(page: Page, number: str) -> Any:
    return page.locator(f'#orders li[data-number="{number}"]')


def open_order(page: Page, number: str) -> None:
    row(page, number).get_by_role("link").click()
    expect(page.locator("#detail-title")).to_contain_text(number)
    expect(page.locator("#detail-title")).to_be_focused()


def search(page: Page, text: str) -> None:
    page.get_by_label("搜索").fill(text)
    page.get_by_role("button", name="筛选", exact=True).click()


def test_without_a_session_the_console_offers_sign_in(browser: Browser, console: Console) -> None:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{console.url}/console/orders/WO-20261101-0001")
    ready(page)
    prompt = page.get_by_role("region", name="请先登录")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("登录")
    # WeCom is not configured here: no WeCom button, the chat command is explained instead
    expect(page.get_by_role("link", name="用企业微信登录")).to_be_hidden()
    expect(page.locator("#orders-view")).to_be_hidden()
    policy = httpx.get(f"{console.url}/console").headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    context.close()


@pytest.mark.parametrize("screen", ["phone", "desk"])
def test_filter_accept_close_with_a_photo_and_reopen(
    sign_in: SignIn, console: Console, screen: str
) -> None:
    place = f"A区{screen}门"
    number = chat_report(console, place, (32, 48))
    other = file_order(console, f"3号楼{screen}侧")
    page, errors = sign_in("lisi", screen)
    # opens on open and accepted orders of the member's team
    expect(row(page, number)).to_be_visible()
    expect(page.get_by_label("状态")).to_have_value("")

    search(page, place)
    expect(row(page, number)).to_be_visible()
    expect(row(page, other["number"])).to_have_count(0)
    expect(page.locator("#list-status")).to_have_text("显示 1 条工单")
    assert httpx.URL(page.url).params["q"] == place

    open_order(page, number)
    detail = page.locator("#detail")
    expect(detail.locator('[data-field="location"]')).to_have_text(place)
    expect(detail.locator('[data-field="sla"]')).to_contain_text("剩余")
    # both photos of the report, each with its own alt text
    for index, width in enumerate((32, 48), 1):
        before = detail.get_by_role("img", name=f"工单 {number} 的上报照片（{index}/2）")
        expect(before).to_be_visible()
        expect(before).to_have_js_property("complete", True)
        assert before.evaluate("img => img.naturalWidth") == width
    # a member may accept (and comment), not transfer or reject
    actions = page.get_by_role("group", name="操作")
    expect(actions.get_by_role("button")).to_have_text(["接单", "备注"])

    actions.get_by_role("button", name="接单").click()
    confirmation = page.locator("#confirmation")
    expect(confirmation).to_contain_text("状态 待处理 → 处理中")
    expect(confirmation).to_contain_text("处理人 — → lisi")
    expect(confirmation).to_be_focused()
    expect(page.locator("#detail-status")).to_have_text("处理中")
    # now its assignee: transfer within the team and close, no longer accept
    expect(actions.get_by_role("button")).to_have_text(["转派", "结单", "备注"])

    actions.get_by_role("button", name="结单").click()
    page.get_by_label("结单说明").fill("已清理通道")
    page.get_by_label("结单照片（可选）").set_input_files(
        files=[FilePayload(name="fixed.jpg", mimeType="image/jpeg", buffer=jpeg_bytes(40, 30))]
    )
    page.get_by_role("button", name="结单", exact=True).last.click()
    expect(confirmation).to_contain_text("状态 处理中 → 已结单")
    expect(page.locator("#detail-status")).to_have_text("已结单")
    after = detail.get_by_role("img", name=f"工单 {number} 的结单照片")
    expect(after).to_have_js_property("complete", True)
    assert after.evaluate("img => img.naturalWidth") == 40
    expect(detail.locator('[data-field="close_note"]')).to_have_text("已清理通道")
    expect(page.locator("#timeline li")).to_have_count(3)
    expect(page.locator("#timeline")).to_contain_text("结单")
    shoot(page, f"console-detail-{screen}", docs=screen == "desk")
    # a closed order leaves the list of open and accepted ones
    expect(row(page, number)).to_have_count(0)
    # ... and comes back when its team reopens it
    expect(actions.get_by_role("button")).to_have_text(["重新打开", "备注"])
    actions.get_by_role("button", name="重新打开").click()
    page.get_by_label("原因（可选）").fill("又堵了")
    page.get_by_role("button", name="重新打开", exact=True).last.click()
    expect(confirmation).to_contain_text("状态 已结单 → 待处理")
    expect(row(page, number)).to_have_count(1)  # (on a phone the detail hides the list)

    shown = httpx.get(f"{console.url}/api/v1/orders/{number}", headers=ADMIN).json()
    assert (shown["status"], shown["assignee"]) == ("open", "lisi")
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds == ["created", "accepted", "closed", "reopened"]
    assert errors == [], f"the page's script failed: {errors}"


@pytest.mark.parametrize("screen", ["phone", "desk"])
def test_a_lead_transfers_and_rejects_with_a_reason(
    sign_in: SignIn, console: Console, screen: str
) -> None:
    moved = file_order(console, f"A区{screen}组长转派")
    refused = file_order(console, f"A区{screen}组长退回")
    page, errors = sign_in("zhaoliu", screen)
    expect(row(page, moved["number"])).to_be_visible()
    shoot(page, f"console-list-{screen}", docs=screen == "desk")
    search(page, f"{screen}组长")
    expect(page.locator("#list-status")).to_have_text("显示 2 条工单")

    open_order(page, moved["number"])
    actions = page.get_by_role("group", name="操作")
    expect(actions.get_by_role("button")).to_have_text(["接单", "转派", "退回", "结单", "备注"])
    actions.get_by_role("button", name="转派").click()
    target = page.get_by_label("转派给（用户或班组）")
    expect(target).to_be_focused()
    target.fill("wangwu")
    page.get_by_role("button", name="转派", exact=True).last.click()
    confirmation = page.locator("#confirmation")
    expect(confirmation).to_contain_text("处理人 — → wangwu")
    expect(row(page, moved["number"])).to_contain_text("wangwu")

    if screen == "phone":
        page.get_by_role("button", name="返回列表").click()
        expect(row(page, refused["number"]).get_by_role("link")).to_be_visible()
    open_order(page, refused["number"])
    actions.get_by_role("button", name="退回").click()
    reason = page.get_by_label("原因")
    submit = page.get_by_role("button", name="退回", exact=True).last
    submit.click()  # the reason is required: nothing is sent
    expect(reason).to_be_focused()
    assert reason.evaluate("el => el.validity.valueMissing") is True
    reason.fill("重复上报")
    submit.click()
    expect(confirmation).to_contain_text("状态 待处理 → 已退回")
    expect(page.locator('#detail [data-field="reject_reason"]')).to_have_text("重复上报")
    expect(row(page, refused["number"])).to_have_count(0)

    shown = httpx.get(f"{console.url}/api/v1/orders/{refused['number']}", headers=ADMIN).json()
    assert (shown["status"], shown["reject_reason"]) == ("rejected", "重复上报")
    assert errors == [], f"the page's script failed: {errors}"


def test_a_worker_cannot_see_or_act_on_another_teams_orders(
    sign_in: SignIn, console: Console
) -> None:
    fire = file_order(console, "A区隔离测试")
    mine = file_order(console, "B区隔离测试", "垃圾堆放")
    page, errors = sign_in("pm1")
    search(page, "隔离测试")
    expect(row(page, mine["number"])).to_be_visible()
    expect(row(page, fire["number"])).to_have_count(0)
    # all statuses, all teams: still none of fire's
    page.get_by_label("状态").select_option("any")
    page.get_by_label("班组").fill("fire")
    page.get_by_role("button", name="筛选", exact=True).click()
    expect(page.locator("#list-status")).to_have_text("没有符合条件的工单。")

    # a deep link to fire's order: not found, nothing shown
    page.goto(f"{console.url}/console/orders/{fire['number']}")
    ready(page)
    expect(page.get_by_role("alert")).to_contain_text(fire["number"])
    expect(page.locator("#detail")).to_be_hidden()

    # the API with the same session says the same, and changes nothing
    me = page.request.get(f"{console.url}/api/v1/me").json()
    csrf = {"X-CSRF-Token": me["csrf_token"]}
    base = f"{console.url}/api/v1/orders/{fire['number']}"
    for path in ("", "/actions", "/notifications", "/photos/report"):
        assert page.request.get(base + path).status == 404, path
    for action, body in (("accept", {}), ("reject", {"reason": "x"}), ("close", {"note": ""})):
        answer = page.request.post(f"{base}/{action}", data=body, headers=csrf)
        assert answer.status == 404, action
        assert answer.json()["error"]["code"] == "order_not_found"
    export = page.request.get(f"{console.url}/api/v1/orders?q=隔离测试&status=open")
    assert [o["number"] for o in export.json()["orders"]] == [mine["number"]]
    shown = httpx.get(base, headers=ADMIN).json()
    assert (shown["status"], [e["kind"] for e in shown["events"]]) == ("open", ["created"])
    assert errors == [], f"the page's script failed: {errors}"


def test_english_and_keyboard(sign_in: SignIn, console: Console) -> None:
    order = file_order(console, "A区键盘")
    page, errors = sign_in("wangwu", locale="en-US")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    page.get_by_label("Search").fill("A区键盘")
    page.get_by_label("Search").press("Enter")
    expect(page.locator("#list-status")).to_have_text("Orders shown: 1")
    link = row(page, order["number"]).get_by_role("link")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_be_focused()
    expect(page.locator("#detail-title")).to_have_text(f"Order {order['number']}")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(link).to_be_focused()
    # the choice of language is kept
    page.get_by_role("button", name="切换到中文").click()
    ready(page)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert re.search(r"/console", page.url)
    assert errors == [], f"the page's script failed: {errors}"


def test_more_pages_comments_and_notifications_sent(sign_in: SignIn, console: Console) -> None:
    tag = "分页测试"
    numbers = [file_order(console, f"A区{tag}{i:02d}")["number"] for i in range(PAGE + 3)]
    page, errors = sign_in("dispatcher1")
    search(page, tag)
    expect(page.locator("#list-status")).to_have_text(f"显示 {PAGE} 条工单，还有更多")
    expect(page.locator("#orders li")).to_have_count(PAGE)
    # newest first; "more" brings the rest and puts the focus on the first new one
    assert page.locator("#orders li").first.get_attribute("data-number") == numbers[-1]
    page.get_by_role("button", name="加载更多").click()
    expect(page.locator("#orders li")).to_have_count(PAGE + 3)
    expect(page.get_by_role("button", name="加载更多")).to_be_hidden()
    expect(row(page, numbers[2]).get_by_role("link")).to_be_focused()
    shown = [li.get_attribute("data-number") for li in page.locator("#orders li").all()]
    assert shown == numbers[::-1]

    number = numbers[0]
    open_order(page, number)
    page.get_by_role("group", name="操作").get_by_role("button", name="备注").click()
    page.get_by_label("备注内容").fill("已联系物业")
    page.get_by_role("button", name="备注", exact=True).last.click()
    expect(page.locator("#confirmation")).to_have_text(f"{number}：已添加备注")
    expect(page.locator('#timeline li[data-kind="commented"]')).to_contain_text("已联系物业")
    # the team's members were told of the new order (the outbox delivers it: reload until then)
    sent = page.locator("#sent")
    for _ in range(DELIVERY_ATTEMPTS):
        if sent.get_by_text("发给 wangwu").count():
            break
        page.reload()
        ready(page)
        expect(page.locator("#detail-title")).to_contain_text(number)
    expect(sent.get_by_text("发给 lisi")).to_be_visible()
    expect(sent.get_by_text("发给 wangwu")).to_be_visible()
    assert errors == [], f"the page's script failed: {errors}"


def chart_table(page: Page, name: str) -> dict[str, list[str]]:
    """A dashboard chart's data table: row label -> its cells."""
    rows = page.locator(f'figure[data-chart="{name}"] tbody tr')
    found: dict[str, list[str]] = {}
    for tr in rows.all():
        # the table is in a closed <details>: read its text, not what is rendered
        label = tr.locator("th").text_content() or ""
        found[label] = [td.text_content() or "" for td in tr.locator("td").all()]
    return found


def chart_data(page: Page, name: str) -> dict[str, Any]:
    """What Chart.js drew: labels and each dataset's numbers."""
    data: dict[str, Any] = page.locator(f'figure[data-chart="{name}"] canvas').evaluate(
        """canvas => {
            const chart = Chart.getChart(canvas);
            return {labels: chart.data.labels,
                    series: Object.fromEntries(chart.data.datasets.map(d => [d.label, d.data]))};
        }"""
    )
    return data


@pytest.mark.parametrize("screen", ["phone", "desk"])
def test_the_dashboard_draws_the_known_data_set(
    sign_in: SignIn, console: Console, screen: str
) -> None:
    page, errors = sign_in("dispatcher1", screen)
    page.get_by_role("link", name="看板").click()
    expect(page.get_by_role("heading", name="统计看板")).to_be_focused()
    dashboard = page.get_by_role("region", name="统计看板")
    dashboard.get_by_label("开始日期").fill("2026-11-01")
    dashboard.get_by_label("结束日期").fill("2026-11-03")
    page.get_by_role("button", name="刷新").click()
    expect(page.locator("#dashboard-status")).to_have_text("统计区间: 2026-11-01 – 2026-11-03")
    assert page.url.endswith("/console/dashboard?from=2026-11-01&to=2026-11-03")

    totals = {
        key: page.locator(f'#totals [data-total="{key}"] dd').inner_text()
        for key in ("created", "closed", "rejected", "open_backlog", "sla_breaches")
    }
    assert totals == {
        "created": "5",
        "closed": "2",
        "rejected": "1",
        "open_backlog": "2",
        "sla_breaches": "3",
    }
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    # per day by type: the most reported types first (ties by name), then the day's total
    assert chart_table(page, "created-per-day") == {
        "2026-11-01": ["1", "1", "1", "3"],
        "2026-11-02": ["0", "1", "0", "1"],
        "2026-11-03": ["1", "0", "0", "1"],
    }
    assert chart_data(page, "created-per-day") == {
        "labels": days,
        "series": {"垃圾堆放": [1, 0, 1], "消防通道堵塞": [1, 1, 0], "消防设施损坏": [1, 0, 0]},
    }
    assert chart_table(page, "closed-per-day") == {
        "2026-11-01": ["0", "1", "0", "1"],
        "2026-11-02": ["0", "1", "0", "1"],
        "2026-11-03": ["0", "0", "0", "0"],
    }
    assert chart_data(page, "backlog") == {"labels": days, "series": {"未完成": [1, 2, 2]}}
    assert chart_data(page, "breaches") == {"labels": days, "series": {"超时": [1, 1, 1]}}
    assert chart_table(page, "by-type") == {
        "消防通道堵塞": ["2", "2"],
        "垃圾堆放": ["2", "0"],
        "消防设施损坏": ["1", "0"],
    }
    # fire: accepted after 10 and 20 minutes, closed after 60 and 1740; property: neither
    assert chart_table(page, "medians") == {"fire": ["15", "900"], "property": ["—", "—"]}
    assert chart_data(page, "medians")["series"] == {
        "接单用时": [15, None],
        "结单用时": [900, None],
    }
    assert chart_data(page, "locations") == {
        "labels": ["A区北门", "B区车库", "A区东门"],
        "series": {"上报数": [2, 2, 1]},
    }
    # the numbers are also each canvas's accessible name
    per_day = page.get_by_role("img", name=re.compile("每日新建"))
    expect(per_day).to_have_attribute(
        "aria-label", re.compile("2026-11-01 垃圾堆放 1 消防通道堵塞 1 消防设施损坏 1 合计 3")
    )
    shoot(page, f"console-dashboard-{screen}", docs=screen == "desk")
    assert errors == [], f"the page's script failed: {errors}"


def test_a_second_screen_sees_a_change_within_a_second(sign_in: SignIn, console: Console) -> None:
    order = file_order(console, "A区实时")
    number = order["number"]
    watcher, watcher_errors = sign_in("zhaoliu")
    expect(watcher.locator("#live")).to_have_attribute("data-state", "on")
    open_order(watcher, number)
    expect(row(watcher, number)).to_contain_text("待处理")

    actor, actor_errors = sign_in("lisi", "phone")
    expect(actor.locator("#live")).to_have_attribute("data-state", "on")
    search(actor, "A区实时")
    open_order(actor, number)
    actor.get_by_role("group", name="操作").get_by_role("button", name="接单").click()
    expect(actor.locator("#confirmation")).to_contain_text("状态 待处理 → 处理中")
    # the other screen: its list row and the open detail, and a polite announcement
    expect(row(watcher, number)).to_contain_text("处理中", timeout=1000)
    expect(watcher.locator("#detail-status")).to_have_text("处理中", timeout=1000)
    expect(watcher.locator("#announce")).to_have_text(f"{number} 已更新：处理中")
    # a new order appears on the first screen too
    fresh = file_order(console, "A区实时新单")
    expect(row(watcher, fresh["number"])).to_be_visible(timeout=1000)
    assert watcher_errors == actor_errors == []


def test_export_downloads_the_current_filter(sign_in: SignIn, console: Console) -> None:
    tag = "导出测试"
    numbers = [file_order(console, f"A区{tag}{i}")["number"] for i in range(3)]
    file_order(console, f"B区{tag}", "垃圾堆放")  # another team's: not in lisi's file
    page, errors = sign_in("lisi")
    search(page, tag)
    expect(page.locator("#orders li")).to_have_count(3)
    with page.expect_download() as info:
        page.get_by_role("link", name="导出 CSV").click()
    download = info.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0].split(",")[:3] == ["number", "status", "alarm_type"]
    assert [line.split(",")[0] for line in lines[1:]] == numbers[::-1]
    assert download.suggested_filename.endswith(".csv")
    assert errors == [], f"the page's script failed: {errors}"


def shoot(page: Page, name: str, *, docs: bool) -> None:
    """A screenshot under artifacts/; also the user guide's (docs/img/) when asked for."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=False)
    if docs and os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        page.screenshot(path=SHOTS / f"{name.rsplit('-', 1)[0]}.png", full_page=False)


def test_after_the_live_feed_was_away_the_list_is_read_again(
    sign_in: SignIn, console: Console
) -> None:
    """The feed is at most once: a change made while a screen had no feed (here its stream was
    refused) is shown once the feed is back, because the page reads its list again."""
    order = file_order(console, "A区断线")
    number = order["number"]
    page, errors = sign_in("zhaoliu", before=refuse_streams)
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "off")
    expect(row(page, number)).to_contain_text("待处理")
    accepted = httpx.post(
        f"{console.url}/api/v1/orders/{number}/accept",
        headers={"Authorization": f"Bearer {API_TOKEN}", "X-Acting-User": "wangwu"},
    )
    assert accepted.status_code == 200, accepted.text
    expect(row(page, number)).to_contain_text("待处理")  # missed: no feed
    page.context.unroute(EVENTS)
    expect(live).to_have_attribute("data-state", "on")
    expect(row(page, number)).to_contain_text("处理中")
    expect(row(page, number)).to_contain_text("wangwu")
    assert errors == [], f"the page's script failed: {errors}"


def refuse_streams(context: BrowserContext) -> None:
    context.route(
        EVENTS,
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "too_many_streams", "message": "full"}}',
        ),
    )
