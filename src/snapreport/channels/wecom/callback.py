"""``/wecom/callback``: the URL check (GET) and message pushes (POST) of a self-built app.

The router is declarative; the running ``WeComChannel`` is ``request.app.state.wecom`` (absent
when WeCom is not configured: then the route answers 404). A push is verified, decrypted and
deduplicated, then answered at once with 200 and an empty body; the channel handles it in the
background and replies with message/send. Anything that fails the checks is refused with 403
(signature, ciphertext) or 400 (malformed XML), and nothing of it is handled.
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from snapreport.channels.wecom.channel import WeComChannel
from snapreport.channels.wecom.messages import MAX_XML_BYTES, parse_envelope, parse_message
from snapreport.errors import InvalidInput, InvalidSignature, SnapreportError

PATH: Final = "/wecom/callback"
# a validly signed push older than the deduplication window could otherwise be replayed
MAX_TIMESTAMP_SKEW_SECONDS: Final = 86_400

router = APIRouter(tags=["wecom"])


def _channel(request: Request) -> WeComChannel | None:
    channel = getattr(request.app.state, "wecom", None)
    return channel if isinstance(channel, WeComChannel) else None


def _refusal(exc: SnapreportError) -> Response:
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
    """Answer WeCom's URL check with the decrypted ``echostr``, alone."""
    channel = _channel(request)
    if channel is None:
        return _not_configured()
    # a "+" that was not percent-encoded arrives as a space; base64 has no spaces
    echostr = echostr.replace(" ", "+")
    try:
        channel.crypto.verify(msg_signature, timestamp, nonce, echostr)
        plain = channel.crypto.decrypt(echostr)
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
        await channel.accept(message)
    except SnapreportError as exc:
        return _refusal(exc)
    return Response(status_code=200)


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
