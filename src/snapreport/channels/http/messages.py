"""``POST /api/v1/messages``: one user message, answered synchronously.

The token is checked before a byte of the body is read. The body is JSON (``MessageIn``) or
multipart/form-data (``MessageForm``); it is parsed and checked before anything else happens,
so bad input is a 4xx that changes nothing. Then: a repeated ``message_id`` gets its first
answer; the per-user rate limit counts the message; only then is a photo decoded (once: that
decode validates it and makes the model's copy; a bad photo is still a 4xx, after the rate
limit counted it); the dialogue handles the message in one session turn.

One message is one event: an image (with the text as its caption), else a location (with the
text as its label when it has none), else the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from snapreport.channels.http.auth import Tokens
from snapreport.channels.http.browser import browser_session
from snapreport.channels.http.errors import describe_validation
from snapreport.channels.http.images import decode_base64
from snapreport.channels.http.render import order_out
from snapreport.channels.http.schemas import (
    MAX_LABEL_CHARS,
    MAX_LANGUAGE_HINT_CHARS,
    MAX_TEXT_CHARS,
    MESSAGE_ID_PATTERN,
    USER_ID_PATTERN,
    ErrorOut,
    MessageForm,
    MessageIn,
    MessageOut,
)
from snapreport.channels.http.state import HttpState, get_app_state
from snapreport.errors import (
    ImageTooLarge,
    InvalidRequest,
    MalformedJson,
    UnsupportedMediaType,
    UserMismatch,
)
from snapreport.identity.sessions import BrowserSession
from snapreport.logs import bind
from snapreport.workflow.events import (
    Event,
    ImageEvent,
    LocationEvent,
    Origin,
    Outcome,
    TextEvent,
)

router = APIRouter()
_JSON = "application/json"
CHANNEL = "api"  # orders written by a message of this API are keyed ("api", user, message_id)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 413, 415, 422, 429, 503)
}


class _FormFields(BaseModel):
    user_id: str | None = Field(None, pattern=USER_ID_PATTERN)
    message_id: str | None = Field(None, pattern=MESSAGE_ID_PATTERN)
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    label: str | None = Field(None, max_length=MAX_LABEL_CHARS)
    language: str | None = Field(None, max_length=MAX_LANGUAGE_HINT_CHARS)


@dataclass(frozen=True, slots=True)
class _Photo:
    """A photo not decoded yet: it is checked once the rate limit admitted the message."""

    data: bytes = field(repr=False)
    caption: str


@dataclass(frozen=True, slots=True)
class _Parsed:
    user_id: str | None
    message_id: str | None
    event: Event | _Photo
    language: str | None = None  # the channel's hint


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": _content(MessageIn),
            "multipart/form-data": _content(MessageForm),
        },
    }
}


@router.post(
    "/api/v1/messages",
    response_model=MessageOut,
    responses=_ERRORS,
    openapi_extra={**OPENAPI_BODY, "security": [{"HTTPBearer": []}]},
    tags=["messages"],
    summary="Send one user message and get the assistant's answer",
)
async def post_message(request: Request) -> Response:
    return Response(await _answer_request(request.scope, request.receive), media_type=_JSON)


async def _answer_request(scope: Scope, receive: Receive) -> bytes:
    """The answer's JSON body. The hot path works on the ASGI scope directly: the two headers
    it needs are picked in one pass, the body is read from ``receive``, auth and state are
    looked up without dependencies, and the answer is serialised once, by us."""
    app = scope["app"]
    state = get_app_state(app)
    content_type, authorization = _headers(scope)
    tokens: Tokens = app.state.tokens
    session = None
    if authorization is None:
        session = await browser_session(scope, state.app.identity, open_service=tokens.open)
    if session is None:
        tokens.check("api", authorization)
    parsed = await _read(scope, receive, content_type, state)
    user_id = _speaker(parsed.user_id, session)
    if isinstance(parsed.event, TextEvent):
        # proven: a session, or a token (the open service proves nothing)
        proven = session is not None or tokens.presented(authorization) is not None
        parsed = replace(parsed, event=replace(parsed.event, verified=proven))
    scope.setdefault("state", {})["user_id"] = user_id  # for the access line
    bind(user_id=user_id)
    if parsed.message_id is None:
        await state.limiter.hit(user_id)
        return await _turn(state, user_id, parsed)
    answer, duplicate = await state.idempotency.run(
        user_id,
        parsed.message_id,
        lambda: _turn(state, user_id, parsed),
        admit=lambda: state.limiter.hit(user_id),
    )
    if duplicate:
        state.metrics.duplicates.inc()
        return _as_duplicate(answer)
    return answer


def _headers(scope: Scope) -> tuple[str, str | None]:
    """The media type (lower case, without parameters) and the Authorization header."""
    content_type = ""
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";")[0].strip().lower()
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    return content_type, authorization


class MessagesEndpoint:
    """``POST /api/v1/messages`` as a plain ASGI app, for the app's router to match before the
    documented route (whose handler, ``post_message``, does the same).

    It skips Starlette's per-request endpoint wrapper, request and response objects: an error
    raised here reaches the application's exception handlers through its exception
    middleware, as any other route's does.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _answer_request(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", b"%d" % len(body)),
                    (b"content-type", _JSON.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# compact UTF-8 JSON: the bytes remembered for a repeat are the bytes sent the first time
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _as_duplicate(body: bytes) -> bytes:
    """A remembered answer, sent again with ``"duplicate": true``."""
    return _encode({**_decode(body), "duplicate": True})


def _speaker(declared: str | None, session: BrowserSession | None) -> str:
    """Who speaks: the signed-in user (a body naming someone else is refused), else the
    ``user_id`` the body declares (a trusted backend's token, or an open service)."""
    if session is not None:
        if declared is not None and declared != session.user_id:
            raise UserMismatch(
                f"signed in as {session.user_id!r}; a message cannot speak for {declared!r}"
            )
        return session.user_id
    if declared is None:
        raise InvalidRequest("user_id: required (or sign in, and the session's user speaks)")
    return declared


async def _turn(state: HttpState, user_id: str, parsed: _Parsed) -> bytes:
    event = parsed.event
    if isinstance(event, _Photo):
        checked = await state.decoder.check(event.data)
        event = ImageEvent(
            checked.image,
            mime=checked.image.image.mime,
            caption=event.caption,
            preview=checked.preview,
        )
    origin = None if parsed.message_id is None else Origin(CHANNEL, parsed.message_id)
    outcome = await state.app.assistant.handle(user_id, event, origin, language=parsed.language)
    state.metrics.turn(outcome.state)
    return _encode(_answer(parsed.message_id, outcome))


def _answer(message_id: str | None, outcome: Outcome) -> dict[str, Any]:
    """The ``MessageOut`` body as plain JSON values (built directly: this runs every turn)."""
    order = outcome.order
    return {
        "message_id": message_id,
        "duplicate": False,
        "replies": [{"type": r.type, "text": r.text} for r in outcome.replies],
        "state": outcome.state,
        "order": order_out(order).model_dump(mode="json") if order is not None else None,
        "choices": list(outcome.choices),
        "language": outcome.language,
    }


# -- reading the body ------------------------------------------------------------------------


async def _read(scope: Scope, receive: Receive, content_type: str, state: HttpState) -> _Parsed:
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(Request(scope, receive), state)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        return await _read_json(await _body(receive), state)
    raise UnsupportedMediaType(
        f"send application/json or multipart/form-data, not {content_type or 'no body type'}"
    )


async def _body(receive: Receive) -> bytes:
    """The whole request body (as Starlette's ``Request.body`` reads it)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _read_json(raw: bytes, state: HttpState) -> _Parsed:
    try:
        message = MessageIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson("the body is not valid JSON") from None
        raise InvalidRequest(describe_validation(errors)) from None
    event: Event | _Photo
    if message.image is not None:
        data = decode_base64(message.image.data, state.app.settings.media.max_bytes)
        event = _Photo(data, message.text or "")
    elif message.location is not None:
        loc = message.location
        event = LocationEvent(loc.latitude, loc.longitude, loc.label or (message.text or ""))
    else:
        event = TextEvent(message.text or "")
    return _Parsed(
        user_id=message.user_id,
        message_id=message.message_id,
        event=event,
        language=message.language,
    )


async def _read_form(request: Request, state: HttpState) -> _Parsed:
    max_bytes = state.app.settings.media.max_bytes
    async with request.form(max_files=1, max_fields=16) as form:
        fields: dict[str, Any] = {}
        upload: UploadFile | None = None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "image":
                    raise InvalidRequest(f"{name}: unexpected file; send the photo as 'image'")
                upload = value
            elif name in _FormFields.model_fields:
                fields[name] = value or None
        try:
            parsed = _FormFields.model_validate(fields)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation(exc.errors())) from None
        data = await upload.read(max_bytes + 1) if upload is not None else None
    event: Event | _Photo
    if data is not None:
        if len(data) > max_bytes:
            raise ImageTooLarge(f"the image is larger than {max_bytes} bytes")
        event = _Photo(data, parsed.text or "")
    elif parsed.latitude is not None or parsed.longitude is not None:
        if parsed.latitude is None or parsed.longitude is None:
            raise InvalidRequest("a location needs both latitude and longitude")
        label = parsed.label or parsed.text or ""
        event = LocationEvent(parsed.latitude, parsed.longitude, label)
    elif parsed.text is not None:
        event = TextEvent(parsed.text)
    else:
        raise InvalidRequest("at least one of text, image or location is required")
    return _Parsed(
        user_id=parsed.user_id,
        message_id=parsed.message_id,
        event=event,
        language=parsed.language,
    )
