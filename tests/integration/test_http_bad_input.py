"""Every kind of bad input gets a specific 4xx and changes neither sessions nor orders."""
# ruff: noqa: E501

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http_kit import (
    Running,
    b64,
    bomb_png,
    image_message,
    make_settings,
    png_bytes,
    report,
    running,
)

USER = "alice"
SMALL_IMAGE_CAP = 64 * 1024


@dataclass(frozen=True)
class Bad:
    name: str
    request: dict[str, Any]
    status: int
    code: str
    mentions: str = ""


def _json(body: object) -> dict[str, Any]:
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


BAD_MESSAGES = [
    Bad("malformed json", {"content": b'{"user_id": "alice", "text": ', "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    Bad("not utf-8", {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    Bad("a list", _json([USER, "hi"]), 422, "invalid_request"),
    Bad("missing user_id", _json({"text": "hi"}), 422, "invalid_request", "user_id"),
    Bad("user_id a number", _json({"user_id": 123, "text": "hi"}), 422, "invalid_request", "user_id"),
    Bad("bad user_id", _json({"user_id": "alice smith", "text": "hi"}), 422, "invalid_request", "user_id"),
    Bad("long user_id", _json({"user_id": "a" * 65, "text": "hi"}), 422, "invalid_request", "user_id"),
    Bad("text a list", _json({"user_id": USER, "text": ["hi"]}), 422, "invalid_request", "text"),
    Bad("nothing to say", _json({"user_id": USER}), 422, "invalid_request", "text, image or location"),
    Bad("10000 chars", _json({"user_id": USER, "text": "字" * 10_000}), 422, "invalid_request", "text"),
    Bad("bad message_id", _json({"user_id": USER, "message_id": "a b", "text": "hi"}), 422, "invalid_request", "message_id"),
    Bad("latitude 91", _json({"user_id": USER, "location": {"latitude": 91, "longitude": 0}}), 422, "invalid_request", "latitude"),
    Bad("location without longitude", _json({"user_id": USER, "location": {"latitude": 1}}), 422, "invalid_request", "longitude"),
    Bad("not base64", _json({"user_id": USER, "image": {"data": "%%%%"}}), 422, "invalid_request", "base64"),
    Bad("not an image", _json({"user_id": USER, "image": {"data": b64(b"%PDF-1.4 hello")}}), 415, "unsupported_image_type"),
    Bad("a decompression bomb", _json({"user_id": USER, "image": {"data": b64(bomb_png())}}), 413, "decompression_bomb"),
    Bad("a damaged png", _json({"user_id": USER, "image": {"data": b64(png_bytes()[:60])}}), 415, "invalid_image"),
    Bad("an image over the cap", _json({"user_id": USER, "image": {"data": b64(b"\x89PNG" + b"0" * SMALL_IMAGE_CAP)}}), 413, "image_too_large"),
    Bad("plain text body", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    Bad("a body over the cap", {"content": b"x" * (2 * 1024 * 1024), "headers": {"content-type": "application/json"}}, 413, "request_too_large"),
    Bad("multipart without user_id", {"data": {"text": "hi"}}, 422, "invalid_request", "user_id"),
    Bad("multipart non-image file", {"data": {"user_id": USER}, "files": {"image": ("a.txt", b"just text", "text/plain")}}, 415, "unsupported_image_type"),
    Bad("multipart bomb", {"data": {"user_id": USER}, "files": {"image": ("b.png", bomb_png(), "image/png")}}, 413, "decompression_bomb"),
    Bad("multipart half a location", {"data": {"user_id": USER, "latitude": "30"}}, 422, "invalid_request", "longitude"),
    Bad("multipart latitude not a number", {"data": {"user_id": USER, "latitude": "north", "longitude": "1"}}, 422, "invalid_request", "latitude"),
    Bad("multipart other file field", {"data": {"user_id": USER}, "files": {"photo": ("p.png", png_bytes(), "image/png")}}, 422, "invalid_request", "photo"),
]  # fmt: skip


@pytest.fixture
async def primed(tmp_path: Path) -> AsyncIterator[Running]:
    """An app whose user ``alice`` is half-way through a report, and one order exists."""
    settings = make_settings(
        tmp_path, media={"root": tmp_path / "media", "max_bytes": SMALL_IMAGE_CAP}
    )
    async with running(settings) as r:
        await report(r.client, "zoe")
        photo = await r.client.post("/api/v1/messages", json=image_message(USER, png_bytes()))
        assert photo.json()["state"] == "waiting_location"
        yield r


async def _snapshot(r: Running) -> tuple[object, ...]:
    info = await r.ctx.engine.peek(USER)
    assert info is not None
    orders = await r.ctx.orders.list()
    return (
        info.session.state,
        info.session.version,
        info.session.updated_at,
        len(info.session.history),
        await r.ctx.engine.active_count(),
        [(o.number, o.status) for o in orders],
    )


@pytest.mark.parametrize("bad", BAD_MESSAGES, ids=lambda b: b.name)
async def test_bad_messages_are_refused_and_change_nothing(primed: Running, bad: Bad) -> None:
    before = await _snapshot(primed)
    response = await primed.client.post("/api/v1/messages", **bad.request)
    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] == bad.code
    assert bad.mentions in error["message"]
    assert await _snapshot(primed) == before


BAD_OTHERS = [
    Bad("unknown order", {"method": "GET", "url": "/api/v1/orders/WO-19990101-0001"}, 404, "order_not_found"),
    Bad("unknown route", {"method": "GET", "url": "/api/v1/nothing"}, 404, "not_found"),
    Bad("wrong method", {"method": "PUT", "url": "/api/v1/messages"}, 405, "method_not_allowed"),
    Bad("bad user in path", {"method": "GET", "url": "/api/v1/sessions/alice%20smith"}, 422, "invalid_request", "user_id"),
    Bad("unknown session", {"method": "GET", "url": "/api/v1/sessions/nobody"}, 404, "session_not_found"),
    Bad("clear unknown session", {"method": "DELETE", "url": "/api/v1/sessions/nobody"}, 404, "session_not_found"),
    Bad("bad status filter", {"method": "GET", "url": "/api/v1/orders?status=lost"}, 422, "invalid_request", "status"),
    Bad("bad limit", {"method": "GET", "url": "/api/v1/sessions?limit=0"}, 422, "invalid_request", "limit"),
    Bad("bad media key", {"method": "GET", "url": "/api/v1/media/..%2F..%2Fetc%2Fpasswd"}, 400, "invalid_media_key"),
    Bad("unknown media key", {"method": "GET", "url": "/api/v1/media/img/" + "0" * 64 + ".png"}, 404, "media_not_found"),
    Bad("order without location", {"method": "POST", "url": "/api/v1/orders", "json": {"alarm_type": "漏水"}}, 422, "invalid_request", "location"),
    Bad("order with bad image", {"method": "POST", "url": "/api/v1/orders", "json": {"alarm_type": "漏水", "location": "B1", "image": {"data": b64(b"GIF89a....")}}}, 415, "unsupported_image_type"),
    Bad("order malformed json", {"method": "POST", "url": "/api/v1/orders", "content": b"{", "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    Bad("order bad assignee", {"method": "POST", "url": "/api/v1/orders", "json": {"alarm_type": "漏水", "location": "B1", "assignee": "no body"}}, 422, "invalid_request", "assignee"),
    Bad("user media of no order", {"method": "GET", "url": "/api/v1/users/alice/media/img/" + "1" * 64 + ".jpg"}, 404, "media_not_found"),
    Bad("user media bad key", {"method": "GET", "url": "/api/v1/users/alice/media/secret.txt"}, 400, "invalid_media_key"),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_OTHERS, ids=lambda b: b.name)
async def test_bad_requests_elsewhere_are_refused_and_change_nothing(
    primed: Running, bad: Bad
) -> None:
    before = await _snapshot(primed)
    response = await primed.client.request(**bad.request)
    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] == bad.code
    assert bad.mentions in error["message"]
    assert await _snapshot(primed) == before


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"user_id": "alice", "text": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


async def test_a_body_sent_in_chunks_is_cut_off_at_the_cap(primed: Running) -> None:
    before = await _snapshot(primed)
    response = await primed.client.post(
        "/api/v1/messages",
        content=_chunks(2 * 1024 * 1024),  # no Content-Length: counted as it comes
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert await _snapshot(primed) == before


def test_a_length_declared_next_to_chunks_does_not_bound_the_body() -> None:
    from snapreport.channels.http.middleware import _content_length

    length = (b"content-length", b"10")
    assert _content_length({"headers": [length]}) == 10
    assert _content_length({"headers": [length, (b"transfer-encoding", b"chunked")]}) is None
    assert _content_length({"headers": [(b"transfer-encoding", b"chunked"), length]}) is None
    assert _content_length({"headers": [(b"content-length", b"ten")]}) is None
