"""The web chat page in a real browser, against the real app: a report and a close, end to end.

The page is driven the way a person would (type, pick a file, click), and every step is checked
on what is visible (transcript, state badge, orders panel) and, at the end, through the API.
Screenshots of the key steps land in ``artifacts/e2e/``.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect

from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e

ORDER_NUMBER = re.compile(r"WO-\d{8}-\d{4}")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
USER = "zhangsan"

expect.set_options(timeout=20_000)


def scene(path: Path, *, blocked: bool) -> Path:
    """A stairway picture: boxes in the way, or the way clear."""
    image = Image.new("RGB", (800, 600), (214, 208, 196))
    draw = ImageDraw.Draw(image)
    for step in range(8):
        y = 600 - step * 60
        draw.rectangle([100 + step * 40, y - 60, 700, y], outline=(90, 90, 90), width=4)
    if blocked:
        for i in range(4):
            draw.rectangle([180 + i * 110, 330, 270 + i * 110, 440], fill=(150, 100, 50))
    image.save(path)
    return path


def shoot(page: Page, path: Path) -> None:
    """A screenshot with transitions finished (the orders sheet slides in)."""
    page.screenshot(path=path, animations="disabled")


def new_context(browser: Browser, viewport: dict[str, int], **kwargs: object) -> BrowserContext:
    phone = viewport["width"] < 600
    return browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        locale="zh-CN",
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        **kwargs,  # type: ignore[arg-type]
    )


def watch_policy(context: BrowserContext) -> list[str]:
    """Every Content-Security-Policy violation the browser reports in ``context``'s pages."""
    violations: list[str] = []
    context.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return violations


def open_chat(context: BrowserContext, served: Served) -> Page:
    """The page, signed in as USER through a one-time link (as ``登录`` sends)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + served.sign_in_path(USER))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert errors == [], f"the page's script failed: {errors}"
    expect(page.locator("#signed-in-as")).to_contain_text(USER)
    return page


def transcript(page: Page) -> Locator:
    return page.get_by_role("log")


def badge(page: Page) -> Locator:
    return page.locator("#state-badge")


def quick_reply(page: Page, name: str) -> Locator:
    return page.locator("#quick-replies").get_by_role("button", name=name, exact=True)


def api_orders(served: Served) -> list[dict[str, object]]:
    response = httpx.get(
        f"{served.url}/api/v1/users/{USER}/orders",
        headers={"Authorization": f"Bearer {served.token}"},
    )
    assert response.status_code == 200, response.text
    orders = response.json()["orders"]
    assert isinstance(orders, list)
    return orders


def report(page: Page, served: Served, photo: Path, artifacts: Path, name: str) -> str:
    """A full report through the page; the new order's number."""
    page.set_input_files("#photo-input", photo)

    user_photo = transcript(page).locator(".bubble.user img.photo").last
    expect(user_photo).to_be_visible()
    assert page.evaluate("(img) => img.src.startsWith('blob:')", user_photo.element_handle())
    expect(transcript(page)).to_contain_text("识别结果：消防通道堵塞")
    expect(transcript(page)).to_contain_text("具体位置")
    expect(badge(page)).to_have_text("等待位置")
    expect(badge(page)).to_have_attribute("data-state", "waiting_location")
    shoot(page, artifacts / f"{name}-1-recognised.png")

    page.get_by_label("消息").fill("3号楼东侧楼梯间")
    page.get_by_label("消息").press("Enter")
    summary = transcript(page).locator(".bubble.assistant").last
    expect(summary).to_contain_text("请确认上报信息")
    expect(summary).to_contain_text("3号楼东侧楼梯间")
    expect(summary).to_contain_text("消防通道堵塞")
    expect(badge(page)).to_have_text("等待确认")
    expect(quick_reply(page, "取消")).to_be_visible()
    shoot(page, artifacts / f"{name}-2-summary.png")

    quick_reply(page, "确认").click()
    done = transcript(page).locator(".bubble.assistant").last
    expect(done).to_contain_text(ORDER_NUMBER)
    expect(badge(page)).to_have_text("空闲")
    expect(badge(page)).to_have_attribute("data-state", "idle")
    match = ORDER_NUMBER.search(done.inner_text())
    assert match is not None
    return match.group()


def expect_order_card(page: Page, number: str, status: str) -> Locator:
    card = page.locator(f"#orders-list .order[data-number='{number}']")
    expect(card).to_be_visible()
    expect(card.locator(".chip")).to_have_text(status)
    expect(card).to_contain_text("消防通道堵塞")
    expect(card).to_contain_text("3号楼东侧楼梯间")
    thumbnail = card.locator(".order-thumb img")
    expect(thumbnail).to_be_visible()
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    assert thumbnail.evaluate("(img) => img.complete && img.naturalWidth > 0")
    return card


def test_report_on_a_desktop_then_close_on_a_phone(
    browser: Browser, served: Served, tmp_path: Path, artifacts: Path
) -> None:
    blocked = scene(tmp_path / "blocked.jpg", blocked=True)
    cleared = scene(tmp_path / "cleared.png", blocked=False)

    # ---- the report, on a desktop
    desktop = new_context(browser, DESKTOP)
    violations = watch_policy(desktop)
    page = open_chat(desktop, served)
    number = report(page, served, blocked, artifacts, "desktop-report")

    expect_order_card(page, number, "处理中")
    expect(page.locator("#orders-list .order-thumb img")).to_be_visible()
    shoot(page, artifacts / "desktop-report-3-order.png")
    desktop.close()
    assert violations == [], "the page broke its own Content-Security-Policy"

    [order] = api_orders(served)
    assert order["number"] == number
    assert order["status"] == "open"
    assert order["alarm_type"] == "消防通道堵塞"
    assert order["location"] == "3号楼东侧楼梯间"
    assert order["reporter"] == USER
    assert isinstance(order["image_url"], str)
    image = httpx.get(
        served.url + order["image_url"], headers={"Authorization": f"Bearer {served.token}"}
    )
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/")

    # ---- the close, on a phone (a fresh browser: the user id is typed again)
    phone = new_context(browser, PHONE)
    violations = watch_policy(phone)
    page = open_chat(phone, served)
    expect(badge(page)).to_have_text("空闲")
    shoot(page, artifacts / "phone-close-0-start.png")

    page.get_by_label("消息").fill(f"结单 {number}")
    page.get_by_label("消息").press("Enter")
    expect(badge(page)).to_have_text("等待结单照片")
    expect(badge(page)).to_have_attribute("data-state", "waiting_close_photo")
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text(number)
    expect(quick_reply(page, "取消")).to_be_visible()
    shoot(page, artifacts / "phone-close-1-asked-for-photo.png")

    page.set_input_files("#photo-input", cleared)
    closed = transcript(page).locator(".bubble.assistant").last
    expect(closed).to_contain_text(number)
    expect(closed).to_contain_text("结单")
    expect(badge(page)).to_have_text("空闲")
    shoot(page, artifacts / "phone-close-2-closed.png")

    page.get_by_role("button", name="我的工单").click()
    expect_order_card(page, number, "已结单")
    shoot(page, artifacts / "phone-close-3-orders.png")
    phone.close()
    assert violations == [], "the page broke its own Content-Security-Policy"

    verification = served.vlm.vision_requests[-1]
    assert verification.image_count == 2, "the close photo was compared with the original"
    [order] = api_orders(served)
    assert order["status"] == "closed"
    assert order["close_verified"] is True
    assert order["forced"] is False


def test_location_drop_errors_and_retry_on_a_phone(
    browser: Browser, served: Served, tmp_path: Path, artifacts: Path
) -> None:
    photo = scene(tmp_path / "blocked.png", blocked=True)
    context = new_context(
        browser,
        PHONE,
        geolocation={"latitude": 31.2304, "longitude": 121.4737},
        permissions=["geolocation"],
    )
    page = open_chat(context, served)
    posted: list[dict[str, object]] = []

    def record(request: Request) -> None:
        is_json = request.headers.get("content-type", "").startswith("application/json")
        if request.url.endswith("/api/v1/messages") and is_json:
            body = request.post_data_json
            assert isinstance(body, dict)
            posted.append(body)

    page.on("request", record)

    # the network fails once: the error is shown, the message is kept for a retry
    page.route("**/api/v1/messages", lambda route: route.abort())
    page.get_by_label("消息").fill("帮助")
    page.get_by_label("消息").press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("无法连接服务器")
    expect(page.locator(".bubble.user.failed")).to_contain_text("帮助")
    shoot(page, artifacts / "phone-error-1-network.png")

    page.unroute("**/api/v1/messages")
    page.get_by_role("button", name="重试").click()
    expect(alert).to_be_hidden()
    expect(page.locator(".bubble.user.failed")).to_have_count(0)
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text("您可以")
    expect(page.locator(".bubble.user")).to_have_count(1)
    assert [m["text"] for m in posted] == ["帮助", "帮助"]
    assert posted[0]["message_id"] == posted[1]["message_id"], "a retry reuses the message's id"

    # a photo dropped onto the transcript is sent like a picked one
    data = base64.b64encode(photo.read_bytes()).decode()
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "drop.png", { type: "image/png" }));
            const target = document.getElementById("transcript");
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        data,
    )
    expect(transcript(page).locator(".bubble.user img.photo")).to_have_count(1)
    expect(badge(page)).to_have_text("等待位置")
    expect(page.locator("#drop-overlay")).to_be_hidden()

    # the location button sends the browser's position, with the typed text as its label
    page.get_by_label("消息").fill("A区东门")
    page.get_by_role("button", name="发送当前位置").click()
    sent = transcript(page).locator(".bubble.user").last.locator(".location")
    expect(sent).to_contain_text("A区东门")
    expect(sent).to_contain_text("31.23040, 121.47370")
    summary = transcript(page).locator(".bubble.assistant").last
    expect(summary).to_contain_text("请确认上报信息")
    expect(summary).to_contain_text("A区东门")
    expect(badge(page)).to_have_text("等待确认")
    shoot(page, artifacts / "phone-location-2-summary.png")

    # a reload keeps the sign-in (the session cookie) and shows the dialogue's state
    page.reload()
    expect(page.locator("#signed-in-as")).to_contain_text(USER)
    expect(badge(page)).to_have_text("等待确认")
    expect(quick_reply(page, "确认")).to_be_visible()

    quick_reply(page, "取消").click()
    expect(badge(page)).to_have_text("空闲")
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text("取消")
    context.close()

    assert api_orders(served) == []
    assert len(served.vlm.vision_requests) == 1, "only the dropped photo was analysed"


def test_the_page_speaks_english_to_an_english_browser(
    browser: Browser, served: Served, tmp_path: Path, artifacts: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="en-US")  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(served.url + served.sign_in_path(USER))
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {USER}")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(badge(page)).to_have_text("idle")

    page.set_input_files("#photo-input", scene(tmp_path / "blocked.png", blocked=True))
    expect(badge(page)).to_have_text("waiting for location")
    page.get_by_label("Message", exact=True).fill("Building 3, east stairs")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(badge(page)).to_have_text("waiting for confirmation")

    # the quick replies send the dialogue's English words
    quick_reply(page, "Confirm").click()
    expect(transcript(page).locator(".bubble.user").last).to_have_text(re.compile(r"^yes"))
    expect(badge(page)).to_have_text("idle")
    expect(page.locator("#orders-list .order .chip")).to_have_text("open")
    shoot(page, artifacts / "desktop-english.png")

    # the same problem again: the duplicate offer's answers are buttons, in English
    page.set_input_files("#photo-input", scene(tmp_path / "again.png", blocked=True))
    expect(badge(page)).to_have_text("waiting for location")
    page.get_by_label("Message", exact=True).fill("Building 3, east stairs")
    page.get_by_label("Message", exact=True).press("Enter")
    quick_reply(page, "Confirm").click()
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text("already an open")
    choices = page.locator("#quick-replies button.choice")
    expect(choices).to_have_text(["1. add", "2. file anyway"])
    # the choices answer it: no "Confirm" that would only ask again; "Cancel" stays
    expect(page.locator("#quick-replies button")).to_have_text(
        ["1. add", "2. file anyway", "Cancel"]
    )
    shoot(page, artifacts / "desktop-english-duplicate.png")
    quick_reply(page, "1. add").click()
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text("Added to work")
    expect(badge(page)).to_have_text("idle")
    expect(choices).to_have_count(0)
    context.close()

    [order] = api_orders(served)
    assert order["location"] == "Building 3, east stairs"
    assert isinstance(order["image_keys"], list)
    assert len(order["image_keys"]) == 2, "the second report's photo was added to the order"


def test_the_type_question_as_buttons_and_labels_that_follow_the_replies(
    browser: Browser, served: Served, tmp_path: Path, artifacts: Path
) -> None:
    context = browser.new_context(viewport=PHONE, locale="en-US")  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(served.url + served.sign_in_path(USER))
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {USER}")

    # the model cannot tell: the reply asks which type, the page offers the catalog as buttons
    served.vlm.enqueue_content("I cannot tell what this shows.")
    page.set_input_files("#photo-input", scene(tmp_path / "blocked.png", blocked=True))
    expect(transcript(page)).to_contain_text("Which type of problem is it?")
    choices = page.locator("#quick-replies button.choice")
    expect(choices).to_have_count(8)
    expect(choices.first).to_have_text("1. 消防通道堵塞")
    shoot(page, artifacts / "phone-type-buttons.png")

    quick_reply(page, "6. 漏水").click()
    expect(transcript(page).locator(".bubble.user").last).to_have_text(re.compile(r"^6"))
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text(
        'The type is now "漏水"'
    )
    expect(choices).to_have_count(0)
    expect(badge(page)).to_have_text("waiting for location")

    # the words 中文 switch the replies, and the page's labels follow them
    page.get_by_label("Message", exact=True).fill("中文")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(transcript(page).locator(".bubble.assistant").last).to_have_text(
        re.compile("以后用中文回复")
    )
    expect(badge(page)).to_have_text("等待位置")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_label("消息", exact=True)).to_have_attribute("placeholder", "输入消息…")

    page.get_by_label("消息", exact=True).fill("3号楼东侧楼梯间")
    page.get_by_label("消息", exact=True).press("Enter")
    expect(transcript(page).locator(".bubble.assistant").last).to_contain_text("类型：漏水")
    quick_reply(page, "确认").click()
    expect(badge(page)).to_have_text("空闲")
    shoot(page, artifacts / "phone-type-chinese.png")

    # a reload keeps the session's language, whatever the browser's is
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    context.close()

    [order] = api_orders(served)
    assert (order["alarm_type"], order["location"]) == ("漏水", "3号楼东侧楼梯间")
