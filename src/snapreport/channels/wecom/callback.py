"""``/wecom/callback``: the URL check (GET) and message pushes (POST) of a self-built app.

The router is declarative; the running ``WeComChannel`` is ``request.app.state.wecom`` (absent
when WeCom is not configured: then the route answers 404). A push is verified, decrypted and
deduplicated, then answered at once with 200 and an empty body; the channel handles it in the
background and replies with message/send. Anything that fails the checks is refused with 403
(signature, timestamp, ciphertext) or 400 (malformed XML, a DOCTYPE), and nothing of it is
handled; the reason goes to the log.

The URL check (GET) passes the same signature and timestamp checks as a push, and answers only
a plaintext shaped like WeCom's ``echostr`` (a short random string): a captured push replayed
as ``echostr`` is never decrypted for the caller.
"""

from __future__ import annotations

import re
import time
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from snapreport.channels.http.state import get_app_state
from snapreport.channels.wecom.channel import WeComChannel
from snapreport.channels.wecom.messages import MAX_XML_BYTES, parse_envelope, parse_message
from snapreport.errors import InvalidInput, InvalidSignature, SnapreportError
from snapreport.logs import get_logger

PATH: Final = "/wecom/callback"
# a validly signed push older than the deduplication window could otherwise be replayed
MAX_TIMESTAMP_SKEW_SECONDS: Final = 86_400
# what WeCom encrypts as the URL check's echostr: a short random string (digits in practice);
# base64 and URL-safe characters are allowed too, markup and whitespace never
ECHOSTR_PATTERN: Final = re.compile(r"[A-Za-z0-9+/=_.-]{1,128}")

router = APIRouter(tags=["wecom"])
log = get_logger("snapreport.wecom")


def _channel(request: Request) -> WeComChannel | None:
    channel = getattr(request.app.state, "wecom", None)
    return channel if isinstance(channel, WeComChannel) else None


def _refusal(exc: SnapreportError) -> Response:
    log.info("wecom_callback_refused", code=exc.code, error=exc.message)
    return PlainTextResponse(exc.code, status_code=exc.http_status)


def _not_configured() -> Response:
    return PlainTextResponse("wecom_not_configured", status_code=404)


@router.get(PATH, include_in_schema=False)
async def url_check(
    request: Request,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    """Answer WeCom's URL check with the decrypted ``echostr``, alone (see the module doc)."""
    channel = _channel(request)
    if channel is None:
        return _not_configured()
    # a "+" that was not percent-encoded arrives as a space; base64 has no spaces
    echostr = echostr.replace(" ", "+")
    try:
        channel.crypto.verify(msg_signature, timestamp, nonce, echostr)
        _check_fresh(timestamp)
        plain = channel.crypto.decrypt(echostr)
        if not ECHOSTR_PATTERN.fullmatch(plain):
            raise InvalidSignature("the echostr does not hold a URL-check string")
    except SnapreportError as exc:
        return _refusal(exc)
    return PlainTextResponse(plain)


@router.post(PATH, include_in_schema=False)
async def receive(
    request: Request,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
) -> Response:
    """Take one push: check it, remember it, answer 200 with an empty body at once."""
    channel = _channel(request)
    if channel is None:
        return _not_configured()
    try:
        body = await _read_capped(request)
        envelope = parse_envelope(body)
        channel.crypto.verify(msg_signature, timestamp, nonce, envelope.encrypt)
        _check_fresh(timestamp)
        message = parse_message(channel.crypto.decrypt(envelope.encrypt))
        accepted = await channel.accept(message)
    except SnapreportError as exc:
        return _refusal(exc)
    if accepted:
        await _remember_wecom_user(request, message.header.from_user_name)
    return Response(status_code=200)


async def _remember_wecom_user(request: Request, user_id: str) -> None:
    """Record that ``user_id`` is on WeCom (their notifications go there too). The message is
    already accepted: a database that is away costs a notification channel, not the message."""
    try:
        await get_app_state(request.app).app.notifications.mark_wecom_user(user_id)
    except SnapreportError as exc:
        log.warning("wecom_user_not_recorded", code=exc.code, error=exc.message)


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_XML_BYTES:
        raise InvalidInput(f"the body has {declared} bytes; the limit is {MAX_XML_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_XML_BYTES:
            raise InvalidInput(f"the body is larger than {MAX_XML_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_fresh(timestamp: str) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise InvalidSignature("the timestamp is not a number") from None
    if abs(time.time() - sent) > MAX_TIMESTAMP_SKEW_SECONDS:
        raise InvalidSignature("the timestamp is too far from now")
