"""``WeComClient``: gettoken, media/get, message/send and auth/getuserinfo over httpx, with a
shared token cache.

The access_token is cached in the ``KeyValueStore`` under one key per application, so every
worker that shares the store shares the token. One caller at a time refreshes it: in a process
an ``asyncio.Lock``, across processes a short-lived lock key taken with ``set_if_absent``
(waiters poll for the new value). A call refused with errcode 40014 (invalid token) or 42001
(expired token) refreshes the token once and is retried once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import httpx

from snapreport.errors import (
    ImageTooLarge,
    MediaNotFound,
    SignInRefused,
    UnsupportedImageType,
    WeComUnavailable,
)
from snapreport.kv.base import KeyValueStore
from snapreport.kv.keys import key_of
from snapreport.logs import get_logger

log = get_logger(__name__)

TOKEN_ERRCODES: Final = frozenset({40014, 42001})
MEDIA_NOT_FOUND_ERRCODES: Final = frozenset({40007})
# invalid code; code already used or expired
SIGNIN_CODE_ERRCODES: Final = frozenset({40029, 40163})
MAX_TEXT_BYTES: Final = 2048
MAX_CARD_TITLE_BYTES: Final = 128
MAX_CARD_DESCRIPTION_BYTES: Final = 512
MAX_JSON_BYTES: Final = 64 * 1024
DEFAULT_MAX_MEDIA_BYTES: Final = 20 * 1024 * 1024
ELLIPSIS: Final = "…"

T = TypeVar("T")


class _TokenRejected(Exception):
    """WeCom refused the access_token (40014/42001); the caller refreshes and retries once."""


class WeComClient:
    """The WeCom server API for one self-built application. Errors: ``WeComUnavailable``."""

    def __init__(
        self,
        *,
        corp_id: str,
        agent_id: str,
        secret: str,
        kv: KeyValueStore,
        base_url: str = "https://qyapi.weixin.qq.com",
        http: httpx.AsyncClient | None = None,
        timeout_seconds: float = 10.0,
        max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
        token_margin_seconds: float = 300.0,
        refresh_lock_seconds: float = 15.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self._corp_id = corp_id
        self._agent_id = agent_id
        self._secret = secret
        self._kv = kv
        self._http = http or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_seconds
        )
        self._owns_http = http is None
        self._max_media_bytes = max_media_bytes
        self._margin = token_margin_seconds
        self._lock_seconds = refresh_lock_seconds
        self._poll = poll_seconds
        self._local_lock = asyncio.Lock()
        self._token_key = key_of("wecom:token", corp_id, agent_id)
        self._lock_key = key_of("wecom:token-refresh", corp_id, agent_id)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- access token -------------------------------------------------------------------------

    async def access_token(self, *, stale: str | None = None) -> str:
        """A valid access_token, from the shared cache or freshly fetched; ``stale`` is one
        WeCom just refused, which must not be handed out again."""
        cached = await self._cached_token()
        if cached and cached != stale:
            return cached
        async with self._local_lock:
            cached = await self._cached_token()
            if cached and cached != stale:
                return cached
            return await self._refresh_shared(stale)

    async def _cached_token(self) -> str | None:
        raw = await self._kv.get(self._token_key)
        return raw.decode() if raw else None

    async def _refresh_shared(self, stale: str | None) -> str:
        deadline = time.monotonic() + self._lock_seconds
        owner = uuid.uuid4().hex.encode()
        while True:
            if await self._kv.set_if_absent(self._lock_key, owner, ttl_seconds=self._lock_seconds):
                try:
                    # another worker may have refreshed between our last read and our lock
                    cached = await self._cached_token()
                    if cached and cached != stale:
                        return cached
                    token, expires_in = await self._gettoken()
                    ttl = max(expires_in - min(self._margin, expires_in / 2), 1.0)
                    await self._kv.set(self._token_key, token.encode(), ttl_seconds=ttl)
                    return token
                finally:
                    await self._kv.delete(self._lock_key)
            await asyncio.sleep(self._poll)
            cached = await self._cached_token()
            if cached and cached != stale:
                return cached
            if time.monotonic() > deadline:
                raise WeComUnavailable("timed out waiting for another worker's token refresh")

    async def _gettoken(self) -> tuple[str, float]:
        response = await self._request(
            "GET", "/cgi-bin/gettoken", params={"corpid": self._corp_id, "corpsecret": self._secret}
        )
        body = _json(response.content, "gettoken")
        token = body.get("access_token")
        if body.get("errcode", 0) != 0 or not isinstance(token, str) or not token:
            raise WeComUnavailable(f"gettoken failed: {_describe(body)}")
        expires_in = body.get("expires_in", 7200)
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = 7200
        log.info("wecom_token_fetched", expires_in=expires_in)
        return token, float(expires_in)

    async def _with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        token = await self.access_token()
        try:
            return await call(token)
        except _TokenRejected:
            log.info("WeCom refused the cached access_token; refreshing it once")
        token = await self.access_token(stale=token)
        try:
            return await call(token)
        except _TokenRejected as exc:
            raise WeComUnavailable("WeCom refused a freshly fetched access_token") from exc

    # -- API calls ------------------------------------------------------------------------------

    async def send_text(self, touser: str, content: str) -> None:
        """Send ``content`` (cut to WeCom's 2048 bytes) to one member with message/send."""
        await self._send(touser, "text", {"content": truncate_utf8(content, MAX_TEXT_BYTES)})

    async def send_textcard(self, touser: str, *, title: str, description: str, url: str) -> None:
        """Send a text card (a title, a description and a link) to one member."""
        card = {
            "title": truncate_utf8(title, MAX_CARD_TITLE_BYTES),
            "description": truncate_utf8(description, MAX_CARD_DESCRIPTION_BYTES),
            "url": url,
        }
        await self._send(touser, "textcard", card)

    async def _send(self, touser: str, msgtype: str, content: dict[str, str]) -> None:
        payload: dict[str, Any] = {
            "touser": touser,
            "msgtype": msgtype,
            "agentid": int(self._agent_id) if self._agent_id.isdigit() else self._agent_id,
            msgtype: content,
        }

        async def call(token: str) -> None:
            response = await self._request(
                "POST", "/cgi-bin/message/send", params={"access_token": token}, json=payload
            )
            body = _json(response.content, "message/send")
            errcode = body.get("errcode", 0)
            if errcode in TOKEN_ERRCODES:
                raise _TokenRejected
            if errcode != 0:
                raise WeComUnavailable(f"message/send failed: {_describe(body)}")
            if body.get("invaliduser"):
                log.warning("message/send: WeCom reports the recipient as invalid")

        await self._with_token(call)

    async def user_of_code(self, code: str) -> str:
        """The member a web sign-in ``code`` belongs to (``auth/getuserinfo``); a code WeCom
        refuses, or a visitor who is not a member (``openid`` instead of ``userid``), is
        ``SignInRefused``."""

        async def call(token: str) -> str:
            response = await self._request(
                "GET", "/cgi-bin/auth/getuserinfo", params={"access_token": token, "code": code}
            )
            body = _json(response.content, "auth/getuserinfo")
            errcode = body.get("errcode", 0)
            if errcode in TOKEN_ERRCODES:
                raise _TokenRejected
            if errcode in SIGNIN_CODE_ERRCODES:
                raise SignInRefused("WeCom did not accept the sign-in code; sign in again")
            if errcode != 0:
                raise WeComUnavailable(f"auth/getuserinfo failed: {_describe(body)}")
            user_id = body.get("userid")
            if not isinstance(user_id, str) or not user_id:
                raise SignInRefused("only members of this WeCom organisation can sign in")
            return user_id

        return await self._with_token(call)

    async def media_get(self, media_id: str) -> tuple[bytes, str]:
        """The bytes and Content-Type of an uploaded image. Success or failure is decided by
        Content-Type: WeCom answers errors as JSON with HTTP 200."""

        async def call(token: str) -> tuple[bytes, str]:
            params = {"access_token": token, "media_id": media_id}
            try:
                async with self._http.stream("GET", "/cgi-bin/media/get", params=params) as resp:
                    return await self._read_media(resp)
            except httpx.HTTPError as exc:
                raise WeComUnavailable(f"media/get failed: {type(exc).__name__}") from exc

        return await self._with_token(call)

    async def _read_media(self, resp: httpx.Response) -> tuple[bytes, str]:
        content_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in {"application/json", "text/plain"}:
            raw = await _read_capped(resp, MAX_JSON_BYTES)
            if raw is None:
                raise WeComUnavailable("media/get answered an oversized error body")
            body = _json(raw, "media/get")
            errcode = body.get("errcode", 0)
            if errcode in TOKEN_ERRCODES:
                raise _TokenRejected
            if errcode in MEDIA_NOT_FOUND_ERRCODES:
                raise MediaNotFound(f"WeCom has no such media: {_describe(body)}")
            raise WeComUnavailable(f"media/get failed: {_describe(body)}")
        if resp.status_code != 200:
            raise WeComUnavailable(f"media/get answered HTTP {resp.status_code}")
        if not content_type.startswith("image/"):
            raise UnsupportedImageType(f"WeCom served {content_type or 'no Content-Type'}")
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_media_bytes:
            raise ImageTooLarge(
                f"the image has {declared} bytes; the limit is {self._max_media_bytes}"
            )
        data = await _read_capped(resp, self._max_media_bytes)
        if data is None:
            raise ImageTooLarge(f"the image is larger than {self._max_media_bytes} bytes")
        return data, content_type

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            # the message of some httpx errors carries the URL, and with it the token
            raise WeComUnavailable(f"{path} failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise WeComUnavailable(f"{path} answered HTTP {response.status_code}")
        return response


async def _read_capped(resp: httpx.Response, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past ``limit`` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise WeComUnavailable(f"{what} answered something that is not JSON") from exc
    if not isinstance(body, dict):
        raise WeComUnavailable(f"{what} answered JSON that is not an object")
    return body


def _describe(body: dict[str, Any]) -> str:
    return f"errcode {body.get('errcode')!r} {str(body.get('errmsg', ''))[:200]!r}"


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut on a character boundary so its UTF-8 form fits ``limit`` bytes."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    return raw[:room].decode(errors="ignore") + ELLIPSIS
