"""Errors to HTTP answers, in ONE place: ``{"error": {"code": ..., "message": ...}}``.

Every ``SnapreportError`` answers with its own ``http_status`` and ``code``. FastAPI's request
validation becomes 422 ``invalid_request`` (naming the field) or 400 ``malformed_json``;
Starlette's own HTTP errors (unknown route, wrong method) keep their status with a code. Bad
input never becomes a 500; anything unexpected is a 500 ``internal_error`` whose details stay in
the log.

A 5xx answer says only what kind of thing failed (``_PUBLIC_MESSAGES``, by code): the error's own
message names hosts, ports, file paths and driver texts, so it goes to the log, under the
request id, and never to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from snapreport.errors import (
    DecoderBusy,
    InvalidRequest,
    MalformedJson,
    RateLimited,
    SnapreportError,
    Unauthorized,
)
from snapreport.logs import get_logger

log = get_logger("snapreport.http")

# the status nginx made usual for "the client closed the connection before the answer"
CLIENT_CLOSED_REQUEST = 499


_RETRY = "; try again shortly (with the same message_id); details are in the server log"
_PUBLIC_MESSAGES: Mapping[str, str] = {
    "store_unavailable": "a data store is unavailable" + _RETRY,
    "media_unavailable": "the photo store is unavailable" + _RETRY,
    "vision_unavailable": "the vision model is unavailable" + _RETRY,
    "wecom_unavailable": "WeCom is unavailable" + _RETRY,
    "session_busy": "the user's previous message is still being handled" + _RETRY,
    "decoder_busy": "every photo decoder is busy" + _RETRY,
    "too_many_streams": "this server holds as many live streams as it may "
    "(SNAPREPORT_LIVE__MAX_STREAMS); try again later",
    "unavailable": "the service is unavailable" + _RETRY,
}
_PUBLIC_FALLBACK = "the service failed" + _RETRY


def public_message(exc: SnapreportError) -> str:
    """What a caller may read of ``exc``: its own message for a refusal (4xx), else a fixed
    text for its code (a 5xx message may name hosts, paths and driver errors)."""
    if exc.http_status < 500:
        return exc.message
    return _PUBLIC_MESSAGES.get(exc.code, _PUBLIC_FALLBACK)


_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error answer."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def describe_validation(errors: Sequence[Any]) -> str:
    """A one-line message naming the fields that were refused (pydantic or FastAPI errors)."""
    parts = []
    for error in list(errors)[:3]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        parts.append(f"{field}: {error.get('msg', 'invalid value')}")
    more = len(errors) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code).inc()


async def on_snapreport_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SnapreportError)
    _count(request, exc.code)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited | DecoderBusy):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.http_status >= 500:
        log.warning("request_failed", code=exc.code, error=exc.message)
    else:
        log.info("request_refused", code=exc.code, error=exc.message)
    return error_response(exc.http_status, exc.code, public_message(exc), headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return await on_snapreport_error(request, MalformedJson("the body is not valid JSON"))
    return await on_snapreport_error(request, InvalidRequest(describe_validation(errors)))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    _count(request, code)
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientDisconnect)
    _count(request, "client_aborted")
    log.info("client_aborted", method=request.method, path=request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _count(request, "internal_error")
    log.exception("request_crashed", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SnapreportError, on_snapreport_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(Exception, on_unexpected)
