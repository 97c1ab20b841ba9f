"""Probes, metrics, request ids, logs, the web page, and a store that goes away mid-flight."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import pytest
import structlog

from snapreport.logs import configure_logging
from snapreport.session.model import USER_ID_PATTERN
from tests.harness.clock import FakeClock
from tests.harness.redis_server import RedisServer
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    b64,
    bearer,
    image_message,
    jpeg_bytes,
    make_settings,
    png_bytes,
    running,
    text_message,
)


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line {line_start!r}")


async def test_probes_answer(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        assert (await r.client.get("/healthz")).json() == {"status": "ok"}
        ready = await r.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"sessions": "ok", "orders": "ok", "media": "ok"},
    }


async def test_metrics_count_turns_errors_and_expirations(tmp_path: Path, clock: FakeClock) -> None:
    async with running(make_settings(tmp_path), clock=clock) as r:
        await r.client.post("/api/v1/messages", json=text_message("alice", "帮助"))
        await r.client.post("/api/v1/messages", json=image_message("bob", png_bytes()))
        await r.client.post("/api/v1/messages", json={"user_id": "bad user"})
        await r.client.post("/api/v1/messages", json=text_message("carol", "hi", "d"))
        await r.client.post("/api/v1/messages", json=text_message("carol", "hi", "d"))
        first = (await r.client.get("/metrics")).text
        clock.advance(601)  # bob's pending report expires
        await r.client.post("/api/v1/messages", json=text_message("bob", "确认"))
        second = (await r.client.get("/metrics")).text
    assert _metric(first, 'snapreport_turns_total{state="idle"}') == 2
    assert _metric(first, 'snapreport_turns_total{state="waiting_location"}') == 1
    assert _metric(first, 'snapreport_errors_total{code="invalid_request"}') == 1
    assert _metric(first, "snapreport_duplicate_messages_total") == 1
    assert _metric(first, "snapreport_active_sessions") == 3
    assert _metric(first, "snapreport_lock_wait_seconds_count") == 3
    assert _metric(first, "snapreport_expirations_noticed_total") == 0
    assert _metric(second, "snapreport_expirations_noticed_total") == 1
    assert _metric(second, "snapreport_active_sessions") == 1


async def test_every_app_has_its_own_registry(tmp_path: Path) -> None:
    async with (
        running(make_settings(tmp_path / "a")) as a,
        running(make_settings(tmp_path / "b")) as b,
    ):
        await a.client.post("/api/v1/messages", json=text_message("alice", "帮助"))
        text_a = (await a.client.get("/metrics")).text
        text_b = (await b.client.get("/metrics")).text
    assert _metric(text_a, 'snapreport_turns_total{state="idle"}') == 1
    assert 'snapreport_turns_total{state="idle"}' not in text_b


async def test_request_ids_are_echoed_or_made(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        given = await r.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await r.client.get("/healthz")
        junk = await r.client.get("/healthz", headers={"X-Request-ID": "bad id\t<script>"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert junk.headers["x-request-id"] != "bad id\t<script>"


async def test_the_web_page_is_served(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        page = await r.client.get("/")
        script = await r.client.get("/static/app.js")
        style = await r.client.get("/static/app.css")
        missing = await r.client.get("/static/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "app.js" in page.text
    rule = f'<meta name="snapreport-user-id-pattern" content="{html.escape(USER_ID_PATTERN)}">'
    assert rule in page.text  # the web page takes the user-id rule from the server
    assert script.status_code == 200
    assert style.status_code == 200
    assert missing.status_code == 404


async def test_the_openapi_document_names_both_message_bodies(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        spec = (await r.client.get("/openapi.json")).json()
        docs = await r.client.get("/docs")
    body = spec["paths"]["/api/v1/messages"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "MessageIn" in spec["components"]["schemas"]
    assert "ImageIn" in spec["components"]["schemas"]
    assert docs.status_code == 200


async def test_logs_carry_ids_but_never_images_or_tokens(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        settings = make_settings(tmp_path, api_token=API_TOKEN)
        photo = jpeg_bytes(width=64, height=48)
        async with running(settings, headers=bearer(API_TOKEN)) as r:
            ok = await r.client.post(
                "/api/v1/messages",
                json=image_message("alice", photo, "m1"),
                headers={"X-Request-ID": "req-42"},
            )
            refused = await r.client.post(
                "/api/v1/messages",
                json={"user_id": "alice", "image": {"data": b64(b"%PDF" + photo)}},
            )
            await r.client.get("/api/v1/sessions", headers=bearer("wrong-" + API_TOKEN))
    finally:
        structlog.reset_defaults()
    assert ok.status_code == 200
    assert refused.status_code == 415
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    request_lines = [x for x in lines if x.get("event") == "request"]
    assert any(x["request_id"] == "req-42" and x["user_id"] == "alice" for x in request_lines)
    assert all(x.get("status") for x in request_lines)
    assert API_TOKEN not in output
    assert b64(photo)[:40] not in output
    assert b64(photo)[-40:] not in output


async def test_a_store_that_goes_away_is_503_and_the_session_survives(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    session = {"backend": "redis", "url": redis_server.url, "key_prefix": redis_prefix}
    async with running(make_settings(tmp_path, session=session)) as r:
        photo = await r.client.post("/api/v1/messages", json=image_message("alice", png_bytes()))
        assert photo.json()["state"] == "waiting_location"
        before = await r.ctx.engine.peek("alice")
        redis_server.stop()
        down = await r.client.post("/api/v1/messages", json=text_message("alice", "东门", "m-2"))
        ready = await r.client.get("/readyz")
        redis_server.start()
        after = await r.ctx.engine.peek("alice")
        retry = await r.client.post("/api/v1/messages", json=text_message("alice", "东门", "m-2"))
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "store_unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"]["orders"] == "ok"
    assert ready.json()["checks"]["sessions"] != "ok"
    assert before is not None
    assert after is not None
    assert (after.session.state, after.session.version) == (
        before.session.state,
        before.session.version,
    )
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is False
    assert retry.json()["state"] == "waiting_confirm"


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/api/v1/users/alice/session"])
async def test_admin_and_user_reads_are_503_while_the_store_is_away(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str, path: str
) -> None:
    session = {"backend": "redis", "url": redis_server.url, "key_prefix": redis_prefix}
    async with running(make_settings(tmp_path, session=session)) as r:
        redis_server.stop()
        response = await r.client.get(path)
        redis_server.start()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"


async def test_a_server_process_collects_young_garbage_less_often(
    tmp_path: Path,
) -> None:
    import gc

    from snapreport.channels.http.app import GC_YOUNG_THRESHOLD, create_app

    saved = gc.get_threshold()
    app = create_app(make_settings(tmp_path), freeze_gc=True)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *saved[1:])
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


@pytest.mark.parametrize("on", [False, True])
def test_fastapis_opentelemetry_follows_the_setting(tmp_path: Path, on: bool) -> None:
    from snapreport.channels.http.app import create_app

    app = create_app(make_settings(tmp_path, opentelemetry=on))
    config = app._telemetry
    assert (config["tracing"], config["metrics"], config["logs"]) == (on, on, on)


async def test_a_store_that_goes_away_is_named_only_in_the_log_and_to_staff(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    session = {"backend": "redis", "url": redis_server.url, "key_prefix": redis_prefix}
    settings = make_settings(
        tmp_path, session=session, api_token=API_TOKEN, admin_token=ADMIN_TOKEN
    )
    address = f":{redis_server.port}"
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        async with running(settings) as r:
            redis_server.stop()
            down = await r.client.post(
                "/api/v1/messages",
                json=text_message("alice", "东门", "m-1"),
                headers=bearer(API_TOKEN),
            )
            outside = await r.client.get("/readyz")
            with_api_token = await r.client.get("/readyz", headers=bearer(API_TOKEN))
            staff = await r.client.get("/readyz", headers=bearer(ADMIN_TOKEN))
            redis_server.start()
    finally:
        structlog.reset_defaults()
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "store_unavailable"
    assert address not in down.text
    assert "redis" not in down.json()["error"]["message"].lower()
    for anonymous in (outside, with_api_token):
        assert anonymous.status_code == 503
        assert anonymous.json()["checks"] == {
            "sessions": "unavailable",
            "orders": "ok",
            "media": "ok",
        }
        assert anonymous.json()["error"]["code"] == "not_ready"
        assert address not in anonymous.text
    assert staff.status_code == 503
    assert address in staff.json()["checks"]["sessions"]
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.startswith("{")]
    failed = [x for x in lines if x.get("event") == "request_failed"]
    assert any(address in x["error"] for x in failed), failed
    assert any(x.get("event") == "not_ready" and address in x["error"] for x in lines)
