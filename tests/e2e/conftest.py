"""Fixtures for the browser tests: Debian's chromium under Playwright, and the real app served
on loopback with the fake vision model behind it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from snapreport.config import Settings
from tests.harness.fake_vlm import FakeVLM
from tests.integration.live_server import live_server, local_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
API_TOKEN = "e2e-token"

# Without the background-networking switches Chromium keeps calling home, which on a closed
# network means a stream of failing connections and slow starts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium; the browser tests fail (never skip) without it."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        pytest.fail(
            "Debian's chromium is required for the browser tests: apt-get install chromium",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # module scope: the sync API must be stopped before any asyncio test runs in this thread
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def artifacts() -> Path:
    """Where this test's screenshots go (``artifacts/e2e/`` at the repository root)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass(frozen=True, slots=True)
class Served:
    """The app under test: its base URL, settings and the fake model behind it."""

    url: str
    settings: Settings
    vlm: FakeVLM
    token: str = API_TOKEN

    def sign_in_path(self, user_id: str) -> str:
        """A one-time sign-in link's path, issued as ``登录`` would, on the key-value store
        the server shares (its SQLite file)."""
        return issue_link(self.settings, user_id)


def issue_link(settings: Settings, user_id: str) -> str:
    """A sign-in link's path for ``user_id``, written to ``settings``' SQLite key-value store
    (as another worker would)."""
    from snapreport.bootstrap import sqlite_kv_path
    from snapreport.identity.links import SignInLinks
    from snapreport.kv.sqlite import SqliteKeyValueStore

    async def issue() -> str:
        kv = SqliteKeyValueStore(sqlite_kv_path(settings))
        try:
            return await SignInLinks(kv, ttl_seconds=300, public_url="").issue(user_id)
        finally:
            await kv.aclose()

    # Playwright's sync API runs an event loop in this thread: issue from another one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, issue()).result(timeout=30)


@pytest.fixture
def served(tmp_path: Path, fake_vlm: FakeVLM) -> Iterator[Served]:
    from snapreport.channels.http import create_app

    settings = local_settings(
        tmp_path,
        api_token=API_TOKEN,
        session={"backend": "sqlite"},
        vision={"base_url": fake_vlm.url, "api_key": fake_vlm.api_key, "model": fake_vlm.model},
    )
    with live_server(create_app(settings)) as url:
        yield Served(url, settings, fake_vlm)
