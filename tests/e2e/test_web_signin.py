"""Signing in on the web page in a real browser: WeCom OAuth against the fake WeCom API, on two
server processes that share one SQLite key-value store (two workers).

The browser starts at worker one, is sent to the (fake) WeCom authorize page, comes back to the
callback with a code, and lands signed in. Cookie flags are read from the browser itself; a
reload keeps the session; worker two accepts it; a logout on worker two ends it on worker one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import issue_link
from tests.harness.fake_wecom import (
    TEST_AES_KEY,
    TEST_AGENT_ID,
    TEST_CORP_ID,
    TEST_SECRET,
    TEST_TOKEN,
    FakeWeCom,
)
from tests.harness.redis_server import free_port
from tests.integration.live_server import live_server, local_settings

pytestmark = pytest.mark.e2e
expect.set_options(timeout=20_000)

STARTUP_SECONDS = 60.0
COOKIE = "snapreport_session"


def _serve(env: dict[str, str], cwd: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    script = Path(sys.executable).with_name("snapreport")
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server was not ready within {STARTUP_SECONDS} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def workers(tmp_path: Path, fake_wecom: FakeWeCom) -> Iterator[tuple[str, str]]:
    """Two server processes on one data directory (sessions and key-value store in SQLite)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPREPORT_")}
    env.update(
        {
            "SNAPREPORT_SESSION__BACKEND": "sqlite",
            "SNAPREPORT_DATA_DIR": str(tmp_path),
            "SNAPREPORT_ORDERS__URL": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
            "SNAPREPORT_MEDIA__ROOT": str(tmp_path / "media"),
            "SNAPREPORT_API_TOKEN": "e2e-service-token",
            "SNAPREPORT_ADMIN_TOKEN": "e2e-admin-token",
            "SNAPREPORT_WECOM__CORP_ID": TEST_CORP_ID,
            "SNAPREPORT_WECOM__AGENT_ID": TEST_AGENT_ID,
            "SNAPREPORT_WECOM__SECRET": TEST_SECRET,
            "SNAPREPORT_WECOM__TOKEN": TEST_TOKEN,
            "SNAPREPORT_WECOM__ENCODING_AES_KEY": TEST_AES_KEY,
            "SNAPREPORT_WECOM__API_BASE_URL": fake_wecom.url,
            "SNAPREPORT_WECOM__OAUTH_URL": fake_wecom.url,
            "SNAPREPORT_LOG_LEVEL": "INFO",
        }
    )
    with ExitStack() as stack:
        urls = []
        for name in ("one", "two"):
            url, process = _serve(env, tmp_path, tmp_path / f"server-{name}.log")
            stack.callback(_stop, process)
            urls.append(url)
        yield urls[0], urls[1]


def _ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def test_wecom_sign_in_reload_and_logout_across_two_workers(
    browser: Browser,
    workers: tuple[str, str],
    fake_wecom: FakeWeCom,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    one, two = workers
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(one + "/")
    _ready(page)

    # not signed in: a clear prompt, no chat, no token field anywhere
    prompt = page.get_by_role("region", name="请先登录")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("登录")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("input[type=password]")).to_have_count(0)
    page.screenshot(path=artifacts / "signin-1-prompt.png")

    # WeCom: authorize (the fake signs "lisi" in), the callback, back to the page
    fake_wecom.signin_as = "lisi"
    page.get_by_role("link", name="用企业微信登录").click()
    expect(page.locator("#signed-in-as")).to_have_text("已登录：lisi")
    # (a browser keeps the authorize URL's #wechat_redirect fragment through the redirects)
    assert page.url.split("#")[0] == one + "/"
    [query] = fake_wecom.authorize_queries
    assert query["redirect_uri"] == f"{one}/auth/wecom/callback"
    assert (query["appid"], query["agentid"], query["scope"]) == (
        TEST_CORP_ID,
        TEST_AGENT_ID,
        "snsapi_base",
    )
    assert fake_wecom.getuserinfo_calls == 1

    [cookie] = [c for c in context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["expires"] > time.time() + 11 * 3600  # 12 hours, not a session cookie
    assert COOKIE not in page.evaluate("document.cookie"), "scripts must not read the session"
    session_id = cookie["value"]

    # chatting as the signed-in user (the CSRF header goes along)
    page.get_by_label("消息").fill("帮助")
    page.get_by_label("消息").press("Enter")
    expect(page.locator(".bubble.assistant").last).to_contain_text("您可以")
    page.screenshot(path=artifacts / "signin-2-chatting.png")

    # a reload keeps the session
    page.reload()
    _ready(page)
    expect(page.locator("#signed-in-as")).to_have_text("已登录：lisi")

    # the other worker accepts the same session, and signs it out
    other = context.new_page()
    other.goto(two + "/")
    _ready(other)
    expect(other.locator("#signed-in-as")).to_have_text("已登录：lisi")
    other.get_by_role("button", name="退出登录").click()
    expect(other.get_by_role("region", name="请先登录")).to_be_visible()

    # ... which ends it on the first worker too, even for someone who kept the cookie
    page.reload()
    _ready(page)
    expect(page.get_by_role("region", name="请先登录")).to_be_visible()
    for url in (one, two):
        kept = httpx.get(f"{url}/api/v1/me", headers={"Cookie": f"{COOKIE}={session_id}"})
        assert kept.status_code == 401
        assert kept.json()["error"]["code"] == "not_signed_in"
    assert errors == [], f"the page's script failed: {errors}"
    context.close()

    # the access log of both workers never shows a link token or a session id
    link = issue_link_for(tmp_path)
    assert httpx.get(one + link, follow_redirects=False).status_code == 303
    for name in ("one", "two"):
        log = (tmp_path / f"server-{name}.log").read_text()
        assert session_id not in log
        assert link.rsplit("/", 1)[1] not in log


def issue_link_for(tmp_path: Path) -> str:
    settings = local_settings(tmp_path, data_dir=str(tmp_path), session={"backend": "sqlite"})
    return issue_link(settings, "wangwu")


def test_an_open_service_on_loopback_lets_the_page_name_its_user(
    browser: Browser, tmp_path: Path
) -> None:
    with live_server(_open_app(tmp_path)) as url:
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        page.goto(url + "/")
        _ready(page)
        expect(page.get_by_role("region", name="请先登录")).to_be_hidden()
        page.get_by_label("用户 ID").fill("zhangsan")
        page.get_by_label("用户 ID").press("Enter")
        page.get_by_label("消息").fill("帮助")
        page.get_by_label("消息").press("Enter")
        expect(page.locator(".bubble.assistant").last).to_contain_text("您可以")
        context.close()


def _open_app(tmp_path: Path) -> object:
    from snapreport.channels.http import create_app

    return create_app(local_settings(tmp_path))
