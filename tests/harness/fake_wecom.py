"""Pytest plugin: ``fake_wecom``, a local WeCom server API, and ``WeComPusher``, which calls our
callback the way WeCom does (signed and encrypted).

The fake is a real HTTP server on 127.0.0.1 (an ephemeral port, a thread per request) that
speaks the parts of the protocol we use:

- ``GET /cgi-bin/gettoken``: checks corpid and corpsecret, issues ``tok-<n>`` tokens and counts
  the calls; ``expire_tokens()`` makes every token issued so far answer errcode 42001.
- ``GET /cgi-bin/media/get``: serves registered media with its Content-Type; an unknown id is
  errcode 40007 as JSON with HTTP 200, as WeCom does.
- ``POST /cgi-bin/message/send``: records every JSON body; ``wait_for_sent(n)`` blocks until n
  messages arrived.
- ``GET /connect/oauth2/authorize`` (web sign-in, when the fake is also ``WECOM__OAUTH_URL``):
  records the query and redirects to ``redirect_uri?code=...&state=...`` with a fresh code for
  ``signin_as`` (the member "using" the browser), as WeCom's in-app browser does.
- ``GET /cgi-bin/auth/getuserinfo``: a code issued by ``issue_code`` (or the authorize page)
  answers its member's ``userid`` once; a visitor's code answers ``openid``; any other code
  errcode 40029.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI

from snapreport.channels.wecom.crypto import WeComCrypto
from snapreport.config import Settings

# the official sample's values (see the WeCom crypto known-answer vectors)
TEST_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
TEST_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
TEST_CORP_ID = "ww1436e0e65a779aee"
TEST_AGENT_ID = "1000002"
TEST_SECRET = "fake-wecom-secret"


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    content_type: str


class FakeWeCom:
    """The fake server's state; every method is safe to call from any thread."""

    def __init__(self, *, corp_id: str = TEST_CORP_ID, secret: str = TEST_SECRET) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.url = ""
        self.expires_in = 7200
        self._cond = threading.Condition()
        self._live: set[str] = set()
        self._expired: set[str] = set()
        self._issued = 0
        self._media: dict[str, Media] = {}
        self._sent: list[dict[str, Any]] = []
        self.gettoken_calls = 0
        self.media_calls = 0
        self.send_calls = 0
        self.send_errcode = 0
        self.signin_as = "lisi"
        self.authorize_queries: list[dict[str, str]] = []
        self.getuserinfo_calls = 0
        self._codes: dict[str, dict[str, str]] = {}
        # an outage: every request answers HTTP 503 while set
        self.down = False
        self.refused = 0
        # sends wait at the gate while it is closed; ``release(drop=True)`` refuses them
        self._gate_open = True
        self._drop_held = False
        self.held = 0

    # -- what tests arrange -------------------------------------------------------------------

    def add_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        with self._cond:
            self._media[media_id] = Media(data, content_type)

    def issue_code(self, user_id: str, *, member: bool = True) -> str:
        """A one-time OAuth code for ``user_id`` (a visitor's, if not ``member``)."""
        with self._cond:
            code = f"code-{len(self._codes) + 1}-{user_id}"
            self._codes[code] = {"userid" if member else "openid": user_id}
            return code

    def hold(self) -> None:
        """Make message/send calls wait (unrecorded) until ``release``."""
        with self._cond:
            self._gate_open = False

    def release(self, *, drop: bool) -> None:
        """Let held sends go on; with ``drop`` they answer 503 and are not recorded (lost
        with the sender that crashed while waiting)."""
        with self._cond:
            self._gate_open = True
            self._drop_held = drop
            self._cond.notify_all()

    def wait_for(self, condition: Callable[[FakeWeCom], bool], timeout: float = 20.0) -> None:
        """Block until ``condition(self)`` holds (checked on every change); fail after
        ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout} s for a condition on the fake WeCom")
                self._cond.wait(min(left, 0.1))

    def expire_tokens(self) -> None:
        """Every token issued so far now answers errcode 42001 (access_token expired)."""
        with self._cond:
            self._expired |= self._live
            self._live.clear()

    # -- what tests inspect -------------------------------------------------------------------

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._sent)

    def sent_texts(self, touser: str | None = None) -> list[str]:
        """The text of each sent message (a text card's description)."""
        return [
            m["text"]["content"] if m["msgtype"] == "text" else m["textcard"]["description"]
            for m in self.sent
            if touser is None or m["touser"] == touser
        ]

    def wait_for_sent(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were sent; fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"waited {timeout} s for {count} sent messages; got {len(self._sent)}: "
                        f"{self._sent!r}"
                    )
                self._cond.wait(left)
            return list(self._sent)

    # -- the protocol ---------------------------------------------------------------------------

    def gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        with self._cond:
            self.gettoken_calls += 1
            if query.get("corpid") != self.corp_id or query.get("corpsecret") != self.secret:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self._issued += 1
            token = f"tok-{self._issued}"
            self._live.add(token)
            return {
                "errcode": 0,
                "errmsg": "ok",
                "access_token": token,
                "expires_in": self.expires_in,
            }

    def check_token(self, query: dict[str, str]) -> dict[str, Any] | None:
        token = query.get("access_token", "")
        with self._cond:
            if token in self._live:
                return None
            if token in self._expired:
                return {"errcode": 42001, "errmsg": "access_token expired"}
        return {"errcode": 40014, "errmsg": "invalid access_token"}

    def media(self, query: dict[str, str]) -> Media | dict[str, Any]:
        with self._cond:
            self.media_calls += 1
        error = self.check_token(query)
        if error is not None:
            return error
        with self._cond:
            media = self._media.get(query.get("media_id", ""))
        if media is None:
            return {"errcode": 40007, "errmsg": "invalid media_id"}
        return media

    def authorize(self, query: dict[str, str]) -> str:
        """Where WeCom's authorize page sends the browser back to."""
        with self._cond:
            self.authorize_queries.append(query)
        code = self.issue_code(self.signin_as)
        separator = "&" if "?" in query.get("redirect_uri", "") else "?"
        state = query.get("state", "")
        return (
            f"{query.get('redirect_uri', '')}{separator}{urlencode({'code': code, 'state': state})}"
        )

    def getuserinfo(self, query: dict[str, str]) -> dict[str, Any]:
        with self._cond:
            self.getuserinfo_calls += 1
        error = self.check_token(query)
        if error is not None:
            return error
        with self._cond:
            who = self._codes.pop(query.get("code", ""), None)
        if who is None:
            return {"errcode": 40029, "errmsg": "invalid code"}
        return {"errcode": 0, "errmsg": "ok", **who}

    def send(self, query: dict[str, str], body: bytes) -> dict[str, Any] | None:
        """The answer to message/send; None: answer 503 (a held send that was dropped)."""
        with self._cond:
            self.send_calls += 1
            if not self._gate_open:
                self.held += 1
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._gate_open)
                if self._drop_held:
                    return None
        error = self.check_token(query)
        if error is not None:
            return error
        try:
            message = json.loads(body)
        except ValueError:
            return {"errcode": 40058, "errmsg": "invalid json"}
        if self.send_errcode:
            return {"errcode": self.send_errcode, "errmsg": "injected failure"}
        with self._cond:
            self._sent.append(message)
            self._cond.notify_all()
        return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": f"m{len(self._sent)}"}


def _handler(fake: FakeWeCom) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _query(self) -> dict[str, str]:
            return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

        def _answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, payload: dict[str, Any]) -> None:
            self._answer(json.dumps(payload).encode(), "application/json; charset=UTF-8")

        def _refuse_when_down(self) -> bool:
            with fake._cond:
                if not fake.down:
                    return False
                fake.refused += 1
                fake._cond.notify_all()
            self.send_error(503)
            return True

        def do_GET(self) -> None:
            if self._refuse_when_down():
                return
            path = urlsplit(self.path).path
            if path == "/cgi-bin/gettoken":
                self._json(fake.gettoken(self._query()))
            elif path == "/cgi-bin/auth/getuserinfo":
                self._json(fake.getuserinfo(self._query()))
            elif path == "/connect/oauth2/authorize":
                self.send_response(302)
                self.send_header("Location", fake.authorize(self._query()))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/cgi-bin/media/get":
                result = fake.media(self._query())
                if isinstance(result, Media):
                    self._answer(result.data, result.content_type)
                else:
                    self._json(result)
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self._refuse_when_down():
                return
            if urlsplit(self.path).path == "/cgi-bin/message/send":
                answer = fake.send(self._query(), body)
                if answer is None:
                    self.send_error(503)
                else:
                    self._json(answer)
            else:
                self.send_error(404)

    return Handler


@pytest.fixture
def fake_wecom() -> Iterator[FakeWeCom]:
    """A running fake WeCom API; ``fake_wecom.url`` is its base URL."""
    fake = FakeWeCom()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-wecom", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class WeComPusher:
    """Calls a ``/wecom/callback`` URL as WeCom does: signed, encrypted XML."""

    def __init__(
        self,
        callback_url: str,
        *,
        token: str = TEST_TOKEN,
        aes_key: str = TEST_AES_KEY,
        corp_id: str = TEST_CORP_ID,
        agent_id: str = TEST_AGENT_ID,
    ) -> None:
        self.callback_url = callback_url
        self.crypto = WeComCrypto(token, aes_key, corp_id)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._next_id = 1_000
        self.http = httpx.Client(timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def msg_id(self) -> str:
        self._next_id += 1
        return str(7_300_000_000_000_000_000 + self._next_id)

    def _xml(self, user: str, msg_type: str, fields: str, msg_id: str | None) -> str:
        msg = f"<MsgId>{msg_id}</MsgId>" if msg_id is not None else ""
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[{msg_type}]]></MsgType>{fields}{msg}"
            f"<AgentID>{self.agent_id}</AgentID></xml>"
        )

    def text_xml(self, user: str, content: str, msg_id: str | None = None) -> str:
        fields = f"<Content><![CDATA[{content}]]></Content>"
        return self._xml(user, "text", fields, msg_id or self.msg_id())

    def image_xml(self, user: str, media_id: str, msg_id: str | None = None) -> str:
        fields = (
            "<PicUrl><![CDATA[http://127.0.0.1/pic]]></PicUrl>"
            f"<MediaId><![CDATA[{media_id}]]></MediaId>"
        )
        return self._xml(user, "image", fields, msg_id or self.msg_id())

    def location_xml(
        self, user: str, latitude: float, longitude: float, label: str, msg_id: str | None = None
    ) -> str:
        fields = (
            f"<Location_X>{latitude}</Location_X><Location_Y>{longitude}</Location_Y>"
            f"<Scale>15</Scale><Label><![CDATA[{label}]]></Label>"
        )
        return self._xml(user, "location", fields, msg_id or self.msg_id())

    def voice_xml(self, user: str, msg_id: str | None = None) -> str:
        fields = "<MediaId><![CDATA[voice-1]]></MediaId><Format><![CDATA[amr]]></Format>"
        return self._xml(user, "voice", fields, msg_id or self.msg_id())

    def event_xml(self, user: str, event: str = "enter_agent") -> str:
        fields = f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[]]></EventKey>"
        return self._xml(user, "event", fields, None)

    def push(
        self,
        xml: str,
        *,
        encrypt: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST ``xml`` sealed as WeCom does; ``encrypt``/``signature`` replace the real ones
        (a test that tampers signs its own ``encrypt`` unless it also gives ``signature``)."""
        sealed = self.crypto.encrypt(xml) if encrypt is None else encrypt
        timestamp, nonce = str(int(time.time())), str(self._next_id * 7919)
        params = {
            "msg_signature": signature or self.crypto.sign(timestamp, nonce, sealed),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{self.agent_id}]]></AgentID>"
            f"<Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"
        )
        return self.http.post(
            self.callback_url,
            params=params,
            content=body.encode(),
            headers={"Content-Type": "text/xml"},
        )

    def url_check(
        self, echo: str, *, signature: str | None = None, raw_query: bool = False
    ) -> httpx.Response:
        """The GET that checks the callback URL; ``raw_query`` leaves ``+`` unescaped, as some
        proxies do, so the server sees spaces."""
        echostr = self.crypto.encrypt(echo)
        timestamp, nonce = str(int(time.time())), "1372623149"
        sig = signature or self.crypto.sign(timestamp, nonce, echostr)
        if raw_query:
            query = f"msg_signature={sig}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}"
            return self.http.get(f"{self.callback_url}?{query}")
        params = {"msg_signature": sig, "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
        return self.http.get(self.callback_url, params=params)


def raw_seal(plain: bytes, aes_key: str = TEST_AES_KEY) -> str:
    """AES-256-CBC over ``plain`` exactly as given (no length, receive id or padding added), so
    tests can build envelopes that are wrong in one chosen way."""
    key = base64.b64decode(aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def wecom_settings(tmp_path: Path, api_base_url: str, **overrides: Any) -> Settings:
    """Settings for a WeCom-enabled app on the fake API: local files under ``tmp_path``, no
    environment or ``.env`` read."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "orders": {"url": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"},
        "media": {"root": tmp_path / "media"},
        "wecom": {
            "corp_id": TEST_CORP_ID,
            "agent_id": TEST_AGENT_ID,
            "secret": TEST_SECRET,
            "token": TEST_TOKEN,
            "encoding_aes_key": TEST_AES_KEY,
            "api_base_url": api_base_url,
        },
    }
    values.update(overrides)
    # model_validate skips the environment and .env sources: tests see only these values
    return Settings.model_validate(values)


def wecom_app(settings: Settings, *, poll_seconds: float = 0.2) -> FastAPI:
    """A minimal ASGI app: the WeCom router and a running channel, as the service wires them,
    with a poll interval of the test's choosing."""
    # imported here so that loading this plugin does not import the whole service
    from snapreport.bootstrap import build
    from snapreport.channels.wecom.callback import router

    @asynccontextmanager
    async def lifespan(fastapi_app: FastAPI) -> AsyncIterator[None]:
        async with build(settings, channels=True, wecom_poll_seconds=poll_seconds) as app:
            fastapi_app.state.wecom = app.wecom
            yield

    fastapi_app = FastAPI(lifespan=lifespan)
    fastapi_app.include_router(router)
    return fastapi_app
