"""The command line: serve's refusals, the sessions commands, the diagram, and a graceful
shutdown that lets a turn in flight finish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from snapreport.cli import cli
from tests.harness.fake_vlm import FakeVLM
from tests.harness.redis_server import free_port
from tests.integration.http_kit import image_message, make_settings, png_bytes, running

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SNAPREPORT_ settings or .env of whoever runs the tests."""
    for key in list(os.environ):
        if key.startswith("SNAPREPORT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_serve_refuses_several_workers_on_the_memory_store() -> None:
    result = runner.invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 1
    assert "SNAPREPORT_SESSION__BACKEND=redis" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_several_workers_with_open311_keys_but_no_media_secret() -> None:
    env = {
        "SNAPREPORT_SESSION__BACKEND": "sqlite",
        "SNAPREPORT_OPEN311__API_KEYS": '["open311-key-0123456789"]',
    }
    result = runner.invoke(cli, ["serve", "--workers", "2"], env=env)
    assert result.exit_code == 1
    assert "SNAPREPORT_OPEN311__MEDIA_SECRET" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_to_run_open_off_loopback() -> None:
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "SNAPREPORT_API_TOKEN and SNAPREPORT_ADMIN_TOKEN" in result.output


def test_a_bad_setting_is_one_line() -> None:
    result = runner.invoke(cli, ["sessions", "ls"], env={"SNAPREPORT_RATE_LIMIT_PER_MINUTE": "x"})
    assert result.exit_code == 1
    assert "SNAPREPORT_RATE_LIMIT_PER_MINUTE" in result.output
    assert "Traceback" not in result.output


def test_the_diagram_is_mermaid() -> None:
    result = runner.invoke(cli, ["diagram"])
    assert result.exit_code == 0
    assert result.output.startswith("stateDiagram-v2")
    assert "waiting_location" in result.output


async def _two_pending_reports(tmp_path: Path, sessions_db: Path) -> None:
    session = {"backend": "sqlite", "url": str(sessions_db)}
    async with running(make_settings(tmp_path, session=session)) as r:
        for user in ("alice", "bob"):
            answer = await r.client.post("/api/v1/messages", json=image_message(user, png_bytes()))
            assert answer.status_code == 200


def test_sessions_ls_show_clear_on_sqlite(tmp_path: Path) -> None:
    sessions_db = tmp_path / "sessions.db"
    # the commands run their own event loop, so the sessions are made in one of ours first
    asyncio.run(_two_pending_reports(tmp_path, sessions_db))
    env = {
        "SNAPREPORT_SESSION__BACKEND": "sqlite",
        "SNAPREPORT_SESSION__URL": str(sessions_db),
        "SNAPREPORT_DATA_DIR": str(tmp_path),
        "SNAPREPORT_ORDERS__URL": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
        "SNAPREPORT_MEDIA__ROOT": str(tmp_path / "media"),
        "COLUMNS": "200",
    }
    listed = runner.invoke(cli, ["sessions", "ls"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "2 active session(s)" in listed.output
    assert "alice" in listed.output
    assert "waiting_location" in listed.output
    shown = runner.invoke(cli, ["sessions", "show", "alice"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "waiting_location" in shown.output
    assert "image_key: img/" in shown.output
    cleared = runner.invoke(cli, ["sessions", "clear", "alice"], env=env)
    assert cleared.exit_code == 0
    gone = runner.invoke(cli, ["sessions", "show", "alice"], env=env)
    assert gone.exit_code == 1
    assert "no session for user 'alice'" in gone.output
    bad = runner.invoke(cli, ["sessions", "show", "not a user"], env=env)
    assert bad.exit_code == 1
    assert "invalid_user_id" in bad.output
    left = runner.invoke(cli, ["sessions", "ls"], env=env)
    assert "1 active session(s)" in left.output


@pytest.mark.slow
def test_a_turn_in_flight_finishes_on_shutdown(tmp_path: Path, fake_vlm: FakeVLM) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPREPORT_")}
    env.update(
        {
            "SNAPREPORT_DATA_DIR": str(tmp_path),
            "SNAPREPORT_ORDERS__URL": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
            "SNAPREPORT_MEDIA__ROOT": str(tmp_path / "media"),
            "SNAPREPORT_VISION__BASE_URL": fake_vlm.url,
            "SNAPREPORT_VISION__API_KEY": fake_vlm.api_key,
            "SNAPREPORT_VISION__MODEL": fake_vlm.model,
        }
    )
    fake_vlm.delay = 2.0  # the photo's analysis is still running when the server is stopped
    script = Path(sys.executable).with_name("snapreport")
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _answers(url), what="the server to start")
        result: dict[str, httpx.Response] = {}

        def post() -> None:
            body = image_message("alice", png_bytes(), "photo-1")
            result["photo"] = httpx.post(f"{url}/api/v1/messages", json=body, timeout=60)

        sender = threading.Thread(target=post)
        sender.start()
        _wait_until(lambda: len(fake_vlm.requests) >= 1, what="the model to be asked")
        process.send_signal(signal.SIGTERM)
        sender.join(60)
        # uvicorn re-raises the signal once it has shut down gracefully
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    photo = result["photo"]
    assert photo.status_code == 200
    assert photo.json()["state"] == "waiting_location"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _wait_until(check: Callable[[], bool], *, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)
