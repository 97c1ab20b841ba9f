"""Sign-in over HTTP against the fake WeCom API: OAuth, links, cookies, CSRF, logout.

Every refusal is checked for its code and for what it did not do (no cookie, no session, no
dialogue turn). Two apps sharing one SQLite key-value store stand for two workers.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from snapreport.errors import ConfigurationError
from snapreport.logs import configure_logging
from tests.harness.clock import FakeClock
from tests.harness.fake_wecom import (
    TEST_AES_KEY,
    TEST_AGENT_ID,
    TEST_CORP_ID,
    TEST_SECRET,
    TEST_TOKEN,
    FakeWeCom,
)
from tests.harness.redis_server import RedisServer
from tests.integration.http_kit import (
    ADMIN_TOKEN,
    API_TOKEN,
    Running,
    bearer,
    make_settings,
    running,
    text_message,
)

PUBLIC_URL = "https://snap.example.com"
COOKIE = "snapreport_session"


def settings_for(tmp_path: Path, fake: FakeWeCom, **overrides: Any) -> Any:
    values: dict[str, Any] = {"session": {"backend": "sqlite"}, **overrides}
    return make_settings(
        tmp_path,
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        public_url=PUBLIC_URL,
        wecom={
            "corp_id": TEST_CORP_ID,
            "agent_id": TEST_AGENT_ID,
            "secret": TEST_SECRET,
            "token": TEST_TOKEN,
            "encoding_aes_key": TEST_AES_KEY,
            "api_base_url": fake.url,
            "oauth_url": fake.url,
        },
        **values,
    )


@pytest.fixture
async def app(tmp_path: Path, fake_wecom: FakeWeCom, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(settings_for(tmp_path, fake_wecom), clock=clock) as r:
        yield r


async def start_login(r: Running, next_path: str = "/console") -> tuple[str, dict[str, str]]:
    """GET /auth/wecom/login; the state and the whole authorize query."""
    answer = await r.client.get("/auth/wecom/login", params={"next": next_path})
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["location"]
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return query["state"], {"url": location, **query}


async def finish_login(
    r: Running, fake: FakeWeCom, state: str, user: str = "lisi"
) -> httpx.Response:
    code = fake.issue_code(user)
    return await r.client.get("/auth/wecom/callback", params={"code": code, "state": state})


def cookie(session_id: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session_id}"}


def session_of(answer: httpx.Response) -> str:
    cookie = answer.headers["set-cookie"]
    value = cookie.split(";")[0]
    name, _, session_id = value.partition("=")
    assert name == COOKIE
    return session_id


async def sign_in(r: Running, fake: FakeWeCom, user: str = "lisi") -> tuple[str, str]:
    """A signed-in session: its cookie value and its CSRF token."""
    state, _ = await start_login(r)
    answer = await finish_login(r, fake, state, user)
    session_id = session_of(answer)
    me = await r.client.get("/api/v1/me", headers=cookie(session_id))
    assert me.status_code == 200, me.text
    return session_id, me.json()["csrf_token"]


async def test_wecom_sign_in_end_to_end(app: Running, fake_wecom: FakeWeCom) -> None:
    state, query = await start_login(app, "/console?status=open")
    assert query["url"].startswith(f"{fake_wecom.url}/connect/oauth2/authorize?")
    assert query["url"].endswith("#wechat_redirect")
    assert query["appid"] == TEST_CORP_ID
    assert query["redirect_uri"] == f"{PUBLIC_URL}/auth/wecom/callback"
    assert query["response_type"] == "code"
    assert query["scope"] == "snsapi_base"
    assert query["agentid"] == TEST_AGENT_ID
    answer = await finish_login(app, fake_wecom, state)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console?status=open"
    set_cookie = answer.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=43200"):
        assert flag in set_cookie, set_cookie
    me = await app.client.get("/api/v1/me", headers=cookie(session_of(answer)))
    body = me.json()
    assert body["user_id"] == "lisi"
    assert body["roles"] == []
    assert body["teams"] == []
    assert len(body["csrf_token"]) >= 20


async def test_forged_expired_and_replayed_states_are_refused(
    app: Running, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    state, _ = await start_login(app)
    forged = state[:-1] + ("0" if state[-1] != "0" else "1")
    calls = fake_wecom.getuserinfo_calls
    for bad, words in ((forged, "not ours"), ("deadbeef", "malformed")):
        answer = await finish_login(app, fake_wecom, bad)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "signin_state_invalid"
        assert words in answer.json()["error"]["message"]
        assert "set-cookie" not in answer.headers
    assert fake_wecom.getuserinfo_calls == calls  # WeCom was never asked
    assert (await finish_login(app, fake_wecom, state)).status_code == 303
    replayed = await finish_login(app, fake_wecom, state)
    assert replayed.status_code == 400
    assert "already used" in replayed.text
    assert "set-cookie" not in replayed.headers
    late, _ = await start_login(app)
    clock.advance(601)
    expired = await finish_login(app, fake_wecom, late)
    assert expired.status_code == 400
    assert "too long" in expired.text


async def test_codes_wecom_refuses_and_visitors_are_not_signed_in(
    app: Running, fake_wecom: FakeWeCom
) -> None:
    state, _ = await start_login(app)
    answer = await app.client.get(
        "/auth/wecom/callback", params={"code": "made-up", "state": state}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "signin_refused"
    state, _ = await start_login(app)
    visitor = fake_wecom.issue_code("o-visitor", member=False)
    answer = await app.client.get("/auth/wecom/callback", params={"code": visitor, "state": state})
    assert answer.status_code == 403
    assert "members" in answer.json()["error"]["message"]
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize(
    "foreign", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_a_foreign_next_lands_on_our_home_page(
    app: Running, fake_wecom: FakeWeCom, foreign: str
) -> None:
    state, _ = await start_login(app, foreign)
    answer = await finish_login(app, fake_wecom, state)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    link = await app.ctx.identity.links.issue("lisi")
    answer = await app.client.get(urlsplit(link).path, params={"next": foreign})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_a_link_signs_in_once_and_never_reaches_the_log(
    app: Running, clock: FakeClock
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    link = await app.ctx.identity.links.issue("wangwu")
    path = urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    assert link == f"{PUBLIC_URL}{path}"
    first = await app.client.get(path, params={"next": "/console"})
    assert first.status_code == 303
    assert first.headers["location"] == "/console"
    me = await app.client.get("/api/v1/me", headers=cookie(session_of(first)))
    assert me.json()["user_id"] == "wangwu"
    again = await app.client.get(path)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "signin_link_invalid"
    assert "already used" in again.json()["error"]["message"]
    assert "set-cookie" not in again.headers
    late = urlsplit(await app.ctx.identity.links.issue("wangwu")).path
    clock.advance(301)
    expired = await app.client.get(late)
    assert expired.status_code == 400
    assert "expired" in expired.json()["error"]["message"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line.get("path") == "/auth/link/…" for line in lines)
    assert token not in stream.getvalue()
    assert late.rsplit("/", 1)[1] not in stream.getvalue()
    configure_logging("INFO")


async def test_state_changes_need_the_csrf_header_and_change_nothing_without(
    app: Running, fake_wecom: FakeWeCom
) -> None:
    session_id, csrf = await sign_in(app, fake_wecom)
    cookies = cookie(session_id)
    body = {"text": "帮助"}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        answer = await app.client.post(
            "/api/v1/messages", json=body, headers={**cookies, **headers}
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "csrf_failed"
    assert await app.ctx.engine.peek("lisi") is None  # no turn was taken
    ok = await app.client.post(
        "/api/v1/messages", json=body, headers={**cookies, "X-CSRF-Token": csrf}
    )
    assert ok.status_code == 200, ok.text
    assert await app.ctx.engine.peek("lisi") is not None
    logout = await app.client.post("/auth/logout", headers=cookies)
    assert logout.status_code == 403  # another site cannot sign people out either
    assert (await app.client.get("/api/v1/me", headers=cookies)).status_code == 200


async def test_the_session_speaks_and_another_user_id_is_refused(
    app: Running, fake_wecom: FakeWeCom
) -> None:
    session_id, csrf = await sign_in(app, fake_wecom)
    cookies, headers = cookie(session_id), {"X-CSRF-Token": csrf}
    other = await app.client.post(
        "/api/v1/messages", json=text_message("zhangsan", "帮助"), headers={**cookies, **headers}
    )
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "user_mismatch"
    assert await app.ctx.engine.peek("zhangsan") is None
    assert await app.ctx.engine.peek("lisi") is None
    same = await app.client.post(
        "/api/v1/messages", json=text_message("lisi", "帮助"), headers={**cookies, **headers}
    )
    assert same.status_code == 200
    form = await app.client.post(
        "/api/v1/messages", data={"text": "帮助"}, headers={**cookies, **headers}
    )
    assert form.status_code == 200, form.text
    assert (await app.client.get("/api/v1/users/lisi/orders", headers=cookies)).status_code == 200
    theirs = await app.client.get("/api/v1/users/zhangsan/orders", headers=cookies)
    assert theirs.status_code == 403
    assert theirs.json()["error"]["code"] == "user_mismatch"
    admin = await app.client.get("/api/v1/sessions", headers=cookies)
    assert admin.status_code == 403
    # a bearer token still needs a user id, and the service token still works as before
    missing = await app.client.post(
        "/api/v1/messages", json={"text": "帮助"}, headers=bearer(API_TOKEN)
    )
    assert missing.status_code == 422
    assert "user_id" in missing.json()["error"]["message"]
    backend = await app.client.post(
        "/api/v1/messages", json=text_message("zhangsan", "帮助"), headers=bearer(API_TOKEN)
    )
    assert backend.status_code == 200


async def test_logout_ends_the_session_on_every_worker(
    tmp_path: Path, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    settings = settings_for(tmp_path, fake_wecom)
    async with running(settings, clock=clock) as one, running(settings, clock=clock) as two:
        state, _ = await start_login(one)  # the state signed by one worker ...
        answer = await finish_login(two, fake_wecom, state)  # ... is accepted by the other
        session_id = session_of(answer)
        cookies = cookie(session_id)
        me_one = await one.client.get("/api/v1/me", headers=cookies)
        me_two = await two.client.get("/api/v1/me", headers=cookies)
        assert me_one.json() == me_two.json()
        out = await one.client.post(
            "/auth/logout", headers={**cookies, "X-CSRF-Token": me_one.json()["csrf_token"]}
        )
        assert out.status_code == 204
        assert "Max-Age=0" in out.headers["set-cookie"]
        for worker in (one, two):
            gone = await worker.client.get("/api/v1/me", headers=cookies)
            assert gone.status_code == 401
            assert gone.json()["error"]["code"] == "not_signed_in"
            refused = await worker.client.post(
                "/api/v1/messages", json={"text": "帮助"}, headers=cookies
            )
            assert refused.status_code == 401


async def test_a_session_slides_and_the_cookie_is_sent_again(
    app: Running, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    session_id, _ = await sign_in(app, fake_wecom)
    cookies = cookie(session_id)
    clock.advance(11 * 3600)
    renewed = await app.client.get("/api/v1/users/lisi/session", headers=cookies)
    assert renewed.status_code == 200
    assert f"{COOKIE}={session_id}" in renewed.headers["set-cookie"]
    clock.advance(11 * 3600)
    assert (await app.client.get("/api/v1/me", headers=cookies)).status_code == 200
    clock.advance(12 * 3600 + 1)
    assert (await app.client.get("/api/v1/me", headers=cookies)).status_code == 401


async def test_options_and_the_identity_mode(tmp_path: Path, fake_wecom: FakeWeCom) -> None:
    async with running(settings_for(tmp_path, fake_wecom)) as r:
        assert (await r.client.get("/auth/options")).json() == {"identity": "signin", "wecom": True}
    async with running(make_settings(tmp_path / "open")) as r:
        assert (await r.client.get("/auth/options")).json() == {
            "identity": "declared",
            "wecom": False,
        }
        assert (await r.client.get("/auth/wecom/login")).status_code == 404
    declared = settings_for(tmp_path / "bad", fake_wecom, web={"identity": "declared"})
    with pytest.raises(ConfigurationError, match="declared"):
        async with running(declared):
            pass


RULES = """
[teams.fire]
name = "消防安全组"
members = ["lisi"]
leads = ["zhaoliu"]

[[rules]]
alarm_types = ["消防通道堵塞"]
team = "fire"
accept_within = "30m"
resolve_within = "4h"

[roles]
dispatchers = ["dispatcher1"]
admins = ["root"]
"""


async def test_roles_come_from_the_rules_file(
    tmp_path: Path, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    settings = settings_for(tmp_path, fake_wecom, dispatch={"rules_file": str(rules)})
    async with running(settings, clock=clock) as r:
        seen: dict[str, dict[str, Any]] = {}
        for user in ("lisi", "zhaoliu", "dispatcher1", "root", "nobody"):
            session_id, _ = await sign_in(r, fake_wecom, user)
            me = await r.client.get("/api/v1/me", headers=cookie(session_id))
            seen[user] = {**me.json(), "cookie": cookie(session_id)}
        assert (seen["lisi"]["roles"], seen["lisi"]["teams"]) == (["member"], ["fire"])
        assert (seen["zhaoliu"]["roles"], seen["zhaoliu"]["teams"]) == (["lead"], ["fire"])
        assert seen["dispatcher1"]["roles"] == ["dispatcher"]
        assert seen["root"]["roles"] == ["admin"]
        assert seen["nobody"]["roles"] == []
        # admin endpoints: an admin's session opens them, anyone else's is 403
        assert (
            await r.client.get("/api/v1/sessions", headers=seen["root"]["cookie"])
        ).status_code == 200
        for user in ("lisi", "zhaoliu", "dispatcher1", "nobody"):
            answer = await r.client.get("/api/v1/sessions", headers=seen[user]["cookie"])
            assert answer.status_code == 403, user
            assert "not an admin" in answer.json()["error"]["message"]
        # another user's orders: dispatchers and admins see them, a member does not
        for user, status in (("dispatcher1", 200), ("root", 200), ("lisi", 403)):
            answer = await r.client.get("/api/v1/users/wangwu/orders", headers=seen[user]["cookie"])
            assert answer.status_code == status, user


async def test_sessions_on_redis_survive_an_outage_and_logout_reaches_every_worker(
    tmp_path: Path, fake_wecom: FakeWeCom, redis_server: RedisServer
) -> None:
    settings = settings_for(
        tmp_path, fake_wecom, session={"backend": "redis", "url": redis_server.url}
    )
    async with running(settings) as one, running(settings) as two:
        session_id, csrf = await sign_in(one, fake_wecom)
        headers = {**cookie(session_id), "X-CSRF-Token": csrf}
        await asyncio.to_thread(redis_server.stop)
        away = await two.client.get("/api/v1/me", headers=headers)
        assert away.status_code == 503
        assert away.json()["error"]["code"] == "store_unavailable"
        refused = await two.client.post("/auth/logout", headers=headers)
        assert refused.status_code == 503  # the logout did not happen, and says so
        await asyncio.to_thread(redis_server.start)
        back = await two.client.get("/api/v1/me", headers=headers)
        assert back.status_code == 200, back.text
        assert back.json()["user_id"] == "lisi"
        assert (await two.client.post("/auth/logout", headers=headers)).status_code == 204
        gone = await one.client.get("/api/v1/me", headers=headers)
        assert gone.status_code == 401


async def test_an_admin_signs_a_person_out_everywhere(
    app: Running, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    phone, _ = await sign_in(app, fake_wecom)
    laptop, _ = await sign_in(app, fake_wecom)
    refused = await app.client.delete("/api/v1/sign-ins/lisi", headers=bearer(API_TOKEN))
    assert refused.status_code == 401  # the service token is not the admin token
    clock.advance(1)
    done = await app.client.delete("/api/v1/sign-ins/lisi", headers=bearer(ADMIN_TOKEN))
    assert done.json() == {"user_id": "lisi", "signed_out": True}
    for session_id in (phone, laptop):
        gone = await app.client.get("/api/v1/me", headers=cookie(session_id))
        assert gone.status_code == 401
    clock.advance(1)
    await sign_in(app, fake_wecom)  # signing in again works


async def test_the_staff_api_takes_a_session_with_its_roles_and_csrf(
    tmp_path: Path, fake_wecom: FakeWeCom, clock: FakeClock
) -> None:
    from tests.integration.dispatch_kit import RULES as STAFF_RULES

    rules = tmp_path / "staff.toml"
    rules.write_text(STAFF_RULES, encoding="utf-8")
    settings = settings_for(tmp_path, fake_wecom, dispatch={"rules_file": str(rules)})
    async with running(settings, clock=clock) as r:
        filed = await r.client.post(
            "/api/v1/orders",
            json={"alarm_type": "消防通道堵塞", "location": "A区北门", "description": "堵了"},
            headers=bearer(ADMIN_TOKEN),
        )
        assert filed.status_code == 201, filed.text
        number = filed.json()["number"]
        member, member_csrf = await sign_in(r, fake_wecom, "lisi")
        outsider, _ = await sign_in(r, fake_wecom, "pm1")
        path = f"/api/v1/orders/{number}"
        # a member may not reject (a lead's action): 403, and the order is unchanged
        rejected = await r.client.post(
            f"{path}/reject",
            json={"reason": "not ours"},
            headers={**cookie(member), "X-CSRF-Token": member_csrf},
        )
        assert rejected.status_code == 403, rejected.text
        # another team's member does not even see it
        assert (await r.client.get(path, headers=cookie(outsider))).status_code == 404
        # accepting without the CSRF header is refused before anything happens
        forged = await r.client.post(f"{path}/accept", headers=cookie(member))
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "csrf_failed"
        shown = await r.client.get(path, headers=cookie(member))
        assert shown.json()["status"] == "open"
        accepted = await r.client.post(
            f"{path}/accept", headers={**cookie(member), "X-CSRF-Token": member_csrf}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["assignee"] == "lisi"


LINK = re.compile(r"(?:https?://[^/\s]+)?(/auth/link/[A-Za-z0-9_-]+)")


async def test_login_in_chat_sends_a_one_time_link_and_keeps_it_out_of_the_history(
    app: Running, fake_wecom: FakeWeCom
) -> None:
    answer = await app.client.post(
        "/api/v1/messages", json=text_message("wangwu", "登录"), headers=bearer(API_TOKEN)
    )
    assert answer.status_code == 200, answer.text
    [reply] = answer.json()["replies"]
    found = LINK.search(reply["text"])
    assert found is not None, reply
    assert reply["text"].count(f"{PUBLIC_URL}/auth/link/") == 1
    token = found.group(1).rsplit("/", 1)[1]
    stored = await app.client.get("/api/v1/sessions/wangwu", headers=bearer(ADMIN_TOKEN))
    assert token not in stored.text, "the link must not be kept in the dialogue history"
    signed_in = await app.client.get(found.group(1))
    assert signed_in.status_code == 303
    me = await app.client.get("/api/v1/me", headers=cookie(session_of(signed_in)))
    assert me.json()["user_id"] == "wangwu"
    # English works too, and a signed-in person may ask for a link for another device
    session_id, csrf = await sign_in(app, fake_wecom)
    again = await app.client.post(
        "/api/v1/messages",
        json={"text": "login"},
        headers={**cookie(session_id), "X-CSRF-Token": csrf},
    )
    assert LINK.search(again.json()["replies"][0]["text"]) is not None


async def test_an_open_service_refuses_to_send_sign_in_links(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as r:
        answer = await r.client.post("/api/v1/messages", json=text_message("anyone", "登录"))
        assert answer.status_code == 200
        [reply] = answer.json()["replies"]
        assert LINK.search(reply["text"]) is None
        assert "企业微信" in reply["text"]  # where to ask instead
        # a token on an open service proves nothing either
        forged = await r.client.post(
            "/api/v1/messages", json=text_message("anyone", "login"), headers=bearer("made-up")
        )
        assert LINK.search(forged.json()["replies"][0]["text"]) is None
