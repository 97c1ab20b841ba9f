"""Abusive clients against a live server, over raw sockets: bodies sent to protected endpoints
without a token, bodies past the admin cap, bodies that never arrive, clients that leave
mid-body. Each is answered (or logged) without the server reading what it was not asked for."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from snapreport.channels.http import create_app
from snapreport.logs import configure_logging
from tests.integration.http_kit import ADMIN_TOKEN, API_TOKEN
from tests.integration.live_server import live_server, local_settings

# bounds on waiting for an answer; each answer comes long before (none is a timing assertion)
ANSWER_WAIT_SECONDS = 20.0
HUGE = 24_000_000  # under the general cap (20 MB photo in base64 plus 1 MB), so auth decides


@contextmanager
def _serve(tmp_path: Path, **overrides: Any) -> Iterator[tuple[str, int]]:
    settings = local_settings(tmp_path, **overrides)
    with live_server(create_app(settings)) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        yield parts.hostname, parts.port


def _head(method: str, path: str, length: int, token: str | None = None) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one answer on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        body += chunk
    return status, json.loads(body) if length else {}


def _send_part(address: tuple[str, int], head: bytes, part: bytes) -> tuple[int, dict[str, Any]]:
    """Send the headers and only ``part`` of the body, then wait for the answer."""
    with socket.create_connection(address, timeout=ANSWER_WAIT_SECONDS) as sock:
        sock.sendall(head + part)
        try:
            return _read_answer(sock)
        except TimeoutError:
            pytest.fail(f"no answer within {ANSWER_WAIT_SECONDS} s: the server waits for the body")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders",
        "/api/v1/messages",
        "/api/v1/webhooks",
        *(f"/api/v1/orders/WO-1/{action}" for action in ("transfer", "reject", "close")),
        *(f"/api/v1/orders/WO-1/{action}" for action in ("reopen", "comments")),
    ],
)
def test_a_body_without_a_token_is_refused_before_it_is_read(tmp_path: Path, path: str) -> None:
    tokens = {"api_token": API_TOKEN, "admin_token": ADMIN_TOKEN}
    with _serve(tmp_path, **tokens) as address:
        # 64 KB of a declared 24 MB: an answer now proves the rest was never waited for
        status, body = _send_part(address, _head("POST", path, HUGE), b"{" + b" " * 65535)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_an_admin_body_past_the_admin_cap_is_413(tmp_path: Path) -> None:
    overrides: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "http": {"admin_max_body_bytes": 100_000},
    }
    with _serve(tmp_path, **overrides) as address:
        head = _head("POST", "/api/v1/orders", 100_001, ADMIN_TOKEN)
        status, body = _send_part(address, head, b"{")
        order = json.dumps(
            {"alarm_type": "漏水", "location": "B1", "description": "a leak", "reporter": "ops"}
        ).encode()
        small = _head("POST", "/api/v1/orders", len(order), ADMIN_TOKEN)
        created, made = _send_part(address, small, order)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert "100000" in body["error"]["message"]
    assert created == 201, made  # within the cap the endpoint works as before


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/orders"])
def test_a_body_that_stops_coming_is_answered_408(tmp_path: Path, path: str) -> None:
    with _serve(tmp_path, http={"body_timeout_seconds": 1.0}) as address:
        # the headers and ten bytes of a thousand, then nothing
        status, body = _send_part(address, _head("POST", path, 1000), b'{"user_id"')
    assert status == 408
    assert body["error"]["code"] == "body_timeout"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    yield out
    configure_logging("INFO")


def _events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/orders"])
def test_a_client_gone_mid_body_is_logged_as_an_abort(
    tmp_path: Path, log_lines: io.StringIO, path: str
) -> None:
    with _serve(tmp_path) as address:
        with socket.create_connection(address, timeout=ANSWER_WAIT_SECONDS) as sock:
            sock.sendall(_head("POST", path, 1000) + b'{"user_id"')
        deadline = time.monotonic() + ANSWER_WAIT_SECONDS
        while not any(e["event"] == "request" for e in _events(log_lines)):
            assert time.monotonic() < deadline, "the request never ended"
            time.sleep(0.05)
    events = _events(log_lines)
    assert [e["path"] for e in events if e["event"] == "client_aborted"] == [path]
    assert not [e for e in events if e["event"] == "request_crashed"]
    assert [e["status"] for e in events if e["event"] == "request"] == [499]
