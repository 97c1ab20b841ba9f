"""Request bodies that endpoints read themselves, after authentication, under their own cap.

FastAPI reads a declared body parameter before it runs any dependency, the token check
included, so a protected endpoint with a body takes the ``Request`` and reads the body here:
an unauthenticated request is refused before a byte of its body is read. Such a route declares
its body with ``json_body``, so the OpenAPI document still shows it.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from snapreport.channels.http.errors import describe_validation
from snapreport.channels.http.schemas import ErrorOut
from snapreport.errors import InvalidRequest, MalformedJson, RequestTooLarge, UnsupportedMediaType

Model = TypeVar("Model", bound=BaseModel)
# what reading a body by hand may answer besides the route's own errors
_READING_ERRORS: Final = {code: {"model": ErrorOut} for code in (408, 413, 415)}
_DECLARED: dict[str, type[BaseModel]] = {}
_PHOTO_BODY_SLACK_BYTES: Final = 1024 * 1024


def photo_body_limit(max_photo_bytes: int) -> int:
    """The largest body that may carry a photo of ``max_photo_bytes`` (base64, beside its
    text): the cap of every request, and of a close with its photo."""
    return max_photo_bytes * 4 // 3 + _PHOTO_BODY_SLACK_BYTES


def json_body(model: type[BaseModel], errors: dict[int | str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI arguments of a route that reads a JSON body of ``model`` with ``read_json``:
    the body, required, and ``errors`` with the refusals of reading it (408, 413, 415). The
    model's schema joins the document's components (``declared_bodies``)."""
    _DECLARED[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "responses": {**errors, **_READING_ERRORS},
        "openapi_extra": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
        },
    }


def declared_bodies() -> tuple[type[BaseModel], ...]:
    """The models of every body declared by ``json_body``, for the OpenAPI components."""
    return tuple(_DECLARED.values())


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
