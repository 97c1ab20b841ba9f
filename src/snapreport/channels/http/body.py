"""Request bodies that endpoints read themselves, after authentication, under their own cap.

FastAPI reads a declared body parameter before it runs any dependency, the token check
included, so a protected endpoint with a body takes the ``Request`` and reads the body here:
an unauthenticated request is refused before a byte of its body is read.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from snapreport.channels.http.errors import describe_validation
from snapreport.errors import InvalidRequest, MalformedJson, RequestTooLarge, UnsupportedMediaType

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The whole body, or ``RequestTooLarge`` once it is known to pass ``limit`` bytes: from the
    declared ``Content-Length`` before reading anything, else as the chunks come."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"the body has {declared} bytes; the limit here is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"the body is larger than {limit} bytes, the limit here")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_json(request: Request, model: type[Model], *, limit: int) -> Model:
    """The body, at most ``limit`` bytes of JSON, validated as ``model``."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("", "application/json") and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media_type}")
    raw = await read_body(request, limit=limit)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson("the body is not valid JSON") from None
        raise InvalidRequest(describe_validation(errors)) from None
